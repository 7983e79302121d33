"""The systemd notify protocol (sd_notify(3)): READY, RELOADING, STOPPING, and the watchdog
keep-alive at half of WatchdogSec when the service manager asks for it."""

from __future__ import annotations

import asyncio
import logging
import os
import socket
import time
from collections.abc import Mapping

log = logging.getLogger("imds_proxy.notify")


def sd_notify(state: str, env: Mapping[str, str] | None = None) -> None:
    """Tell systemd (Type=notify) our state; a no-op outside systemd."""
    address = (os.environ if env is None else env).get("NOTIFY_SOCKET")
    if not address:
        return
    if address.startswith("@"):
        address = "\0" + address[1:]
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as s:
        try:
            s.connect(address)
            s.sendall(state.encode())
        except OSError as e:
            log.warning("sd_notify failed: %s", e)


def reloading() -> str:
    """RELOADING=1 with the MONOTONIC_USEC that Type=notify-reload requires beside it."""
    return f"RELOADING=1\nMONOTONIC_USEC={time.clock_gettime_ns(time.CLOCK_MONOTONIC) // 1000}"


def watchdog_interval(env: Mapping[str, str], pid: int) -> float | None:
    """Seconds between keep-alives, or None when no watchdog is asked for: WATCHDOG_USEC set,
    and WATCHDOG_PID, if set, naming this process (sd_watchdog_enabled(3)). Half the
    timeout, as sd_watchdog_enabled(3) recommends."""
    usec = env.get("WATCHDOG_USEC", "")
    if not usec.isdigit() or int(usec) == 0:
        return None
    owner = env.get("WATCHDOG_PID")
    if owner and owner != str(pid):
        return None  # meant for another process (e.g. our parent)
    return int(usec) / 2 / 1_000_000


async def keep_alive(interval: float, env: Mapping[str, str] | None = None) -> None:
    """WATCHDOG=1 every `interval` seconds until cancelled. Sent from the event loop itself,
    so a blocked loop stops it and systemd restarts us."""
    while True:
        sd_notify("WATCHDOG=1", env)
        await asyncio.sleep(interval)
