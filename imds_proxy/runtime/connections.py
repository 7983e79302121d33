"""Connections cannot starve the daemon: idle and half-sent requests time out, each listener
holds a bounded number of connections (the oldest goes first), the descriptor limit is raised,
and accept() failures back off with a log line at most every few seconds."""

from __future__ import annotations

import asyncio
import logging
import resource
import time
from typing import Any

from aiohttp import web
from aiohttp.web_protocol import RequestHandler

log = logging.getLogger("imds_proxy.connections")

#: Seconds a connection may stay open without completing a request: before its first
#: request (aiohttp starts this timer at accept, so half-sent headers time out too) and
#: between keep-alive requests. SDKs send a request at once and reconnect when closed.
IDLE_TIMEOUT = 5.0
#: Connections per listener at most (the oldest is closed to admit a new one): an SDK uses one
#: or two; this leaves room for many clients and stays well under the descriptor limit.
MAX_CONNECTIONS = 512
#: The kernel's queue of connections not yet accepted (aiohttp's default is 128): under a flood
#: of connections a legitimate one waits in it instead of having its SYN dropped and resent
#: seconds later. Linux caps it at net.core.somaxconn (4096 by default).
BACKLOG = 2048
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


def runner(app: web.Application, shutdown_timeout: float = 60.0) -> web.AppRunner:
    """The runner for one listener's app: no access log (we log each request ourselves),
    connections closed after IDLE_TIMEOUT without a complete request; at close, requests in
    flight get `shutdown_timeout` to finish."""
    return web.AppRunner(
        app,
        access_log=None,
        handle_signals=False,
        keepalive_timeout=IDLE_TIMEOUT,
        shutdown_timeout=shutdown_timeout,
    )


def cap_connections(server: web.Server, cap: int) -> None:
    """Hold at most `cap` connections on `server`: a new one closes the oldest, so a flood of
    idle connections cannot lock clients out (an SDK's request takes milliseconds: the oldest
    connection is the flood's). Server.connection_made is aiohttp's one per-connection call;
    this wraps it. force_close, not close: close() leaves an idle connection's socket open."""
    admit = server.connection_made
    closing: set[RequestHandler] = set()

    def connection_made(handler: RequestHandler, transport: asyncio.Transport) -> None:
        admit(handler, transport)
        closing.intersection_update(server.connections)
        excess = len(server.connections) - len(closing) - cap
        for oldest in server.connections:
            if excess <= 0:
                break
            if oldest not in closing and oldest is not handler:
                closing.add(oldest)
                oldest.force_close()
                excess -= 1

    server.connection_made = connection_made  # type: ignore[method-assign]


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
