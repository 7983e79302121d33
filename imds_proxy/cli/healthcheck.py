"""`imds-proxy healthcheck`: probe every listener (or the one given) as an SDK would; exit 0
when all serve valid credentials. For Docker's HEALTHCHECK and Kubernetes probes."""

from __future__ import annotations

import argparse
import sys

from imds_proxy.cli.common import EXIT_FAILURE, daemon_config
from imds_proxy.config.listeners import Listener, parse_listener
from imds_proxy.engine.credentials import utc_now


def cmd_healthcheck(args: argparse.Namespace) -> int:
    from imds_proxy.runtime import probe

    if args.listen:
        listeners: tuple[Listener, ...] = (parse_listener(args.listen),)
    else:
        listeners = daemon_config(args).listeners
    try:
        for listener in listeners:
            print(probe.check(listener, utc_now, args.timeout))
    except probe.Unhealthy as e:
        print(f"imds-proxy: unhealthy: {e}", file=sys.stderr)
        return EXIT_FAILURE
    return 0
