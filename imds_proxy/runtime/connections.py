"""Connections cannot starve the daemon: the descriptor limit is raised, each listener's share of
it bounds the connections it holds (server/site.py closes the oldest, and idle or half-sent ones),
and accept() failures back off with a log line at most every few seconds."""

from __future__ import annotations

import asyncio
import logging
import resource
import time
from typing import Any

from imds_proxy.server.site import BACKLOG, IDLE_TIMEOUT, MAX_CONNECTIONS

__all__ = [
    "BACKLOG",
    "IDLE_TIMEOUT",
    "MAX_CONNECTIONS",
    "AcceptErrors",
    "connection_cap",
    "raise_nofile_limit",
]

log = logging.getLogger("imds_proxy.connections")

#: Descriptors kept for everything else: STS connections, the control socket, logs, threads.
RESERVED_FDS = 128
#: At most one log line about failing accept() calls per this many seconds.
ACCEPT_LOG_INTERVAL = 10.0


def raise_nofile_limit() -> int:
    """Raise the soft RLIMIT_NOFILE to the hard limit; return the soft limit now in force."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard != resource.RLIM_INFINITY and soft < hard:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
            soft = hard
        except (ValueError, OSError) as e:
            log.warning("cannot raise the open-file limit from %d to %d: %s", soft, hard, e)
    return soft


def connection_cap(nofile: int, listeners: int) -> int:
    """Connections each listener may hold: MAX_CONNECTIONS, less when the descriptor limit
    shared by `listeners` listeners is lower."""
    share = (nofile - RESERVED_FDS) // max(1, listeners)
    return max(8, min(MAX_CONNECTIONS, share))


class AcceptErrors:
    """A loop exception handler that logs `accept()` failures (EMFILE, ENFILE, ENOBUFS) at
    most once per ACCEPT_LOG_INTERVAL with a count; asyncio itself retries accept after 1 s.
    Everything else goes to the default handler."""

    def __init__(self, clock: Any = time.monotonic) -> None:
        self._clock = clock
        self._last: float | None = None
        self._suppressed = 0

    def __call__(self, loop: asyncio.AbstractEventLoop, context: dict[str, Any]) -> None:
        if "accept" not in str(context.get("message", "")):
            loop.default_exception_handler(context)
            return
        now = self._clock()
        if self._last is not None and now - self._last < ACCEPT_LOG_INTERVAL:
            self._suppressed += 1
            return
        error = context.get("exception")
        log.error(
            "accept() failing (%s; %d more since the last line): out of descriptors or buffers; "
            "new connections wait in the backlog",
            getattr(error, "strerror", None) or type(error).__name__,
            self._suppressed,
        )
        self._last, self._suppressed = now, 0
