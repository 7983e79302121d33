"""`imds-proxy address up|down|status`: the metadata address on a link of our own, for hosts
without systemd's imds-proxy-address.service (and for node agents with addresses of their own)."""

from __future__ import annotations

import argparse

from imds_proxy.runtime import address

#: `status` exits 3 when an address is missing, as `systemctl status` does for a stopped unit.
EXIT_DOWN = 3


def cmd_address(args: argparse.Namespace) -> int:
    addresses = address.parse(args.address)
    if args.action == "status":
        now = address.status(args.link, addresses)
        for net in now.present:
            print(f"{net} on {args.link}: up")
        for net in now.missing:
            print(f"{net} on {args.link}: missing")
        return 0 if not now.missing else EXIT_DOWN
    act = address.up if args.action == "up" else address.down
    for line in act(args.link, addresses) or [f"nothing to do: {args.link} is already {args.action}"]:
        print(line)
    return 0
