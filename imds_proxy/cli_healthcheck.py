"""`imds-proxy healthcheck`: probe every listener (or the one given) as an SDK would; exit 0
when all serve valid credentials. For Docker's HEALTHCHECK and Kubernetes probes."""

from __future__ import annotations

import argparse
import os
import sys

from imds_proxy import config, profiles
from imds_proxy.cli_serve import EXIT_FAILURE
from imds_proxy.credentials import utc_now
from imds_proxy.listeners import Listener, parse_listener


def cmd_healthcheck(args: argparse.Namespace) -> int:
    from imds_proxy import probe

    if args.listen:
        listeners: tuple[Listener, ...] = (parse_listener(args.listen),)
    else:
        listeners = config.load({}, os.environ, args.config, profiles.read_profile).listeners
    try:
        for listener in listeners:
            print(probe.check(listener, utc_now, args.timeout))
    except probe.Unhealthy as e:
        print(f"imds-proxy: unhealthy: {e}", file=sys.stderr)
        return EXIT_FAILURE
    return 0
