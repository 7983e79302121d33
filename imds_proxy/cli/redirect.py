"""`imds-proxy redirect`: print, apply (--apply) or remove (--remove) the nftables rules that send
the metadata address to the daemon, for this host's processes (--local) or containers (--bridge)."""

from __future__ import annotations

import argparse
import sys

from imds_proxy.cli.common import EXIT_CONFIG
from imds_proxy.runtime import redirect


def cmd_redirect(args: argparse.Namespace) -> int:
    if args.remove:
        removed = redirect.remove()
        table = redirect.TABLE
        print(f"removed table {table}" if removed else f"nothing to remove: no table {table}")
        return 0
    if not args.local and not args.bridge:
        print("imds-proxy: redirect: say what to redirect: --local, --bridge IFACE, or both", file=sys.stderr)
        return EXIT_CONFIG
    if not 1 <= args.port <= 65535:
        print("imds-proxy: redirect: --port must be from 1 to 65535", file=sys.stderr)
        return EXIT_CONFIG
    rules = redirect.Redirect(local=args.local, bridges=tuple(args.bridge or ()), port=args.port)
    if args.apply:
        redirect.apply(rules)
        print(f"applied table {redirect.TABLE} (remove it with: imds-proxy redirect --remove)")
        return 0
    sys.stdout.write(rules.ruleset())
    return 0
