"""One listening socket and its connections: at most `cap` held (a new one closes the oldest idle
one), each closed `idle_timeout` after its last answer (or its accept), all drained at close."""

from __future__ import annotations

import asyncio
import contextlib
import socket

from imds_proxy.server.connection import Connection, Handler

#: Seconds a connection may stay open without completing a request: before its first request
#: (so half-sent headers time out too) and between keep-alive requests. SDKs send a request at
#: once and reconnect when closed.
IDLE_TIMEOUT = 5.0
#: Connections per listener at most (the oldest idle one is closed to admit a new one): an SDK
#: uses one or two; this leaves room for a thousand processes starting at once.
MAX_CONNECTIONS = 1024
#: The kernel's queue of connections not yet accepted: under a flood of connections a
#: legitimate one waits in it instead of having its SYN dropped and resent seconds later.
#: Linux caps it at net.core.somaxconn (4096 by default).
BACKLOG = 2048
#: How often idle connections are looked for (so one closes IDLE_TIMEOUT to +1 s after its last answer).
_SWEEP_SECONDS = 1.0


class Site:
    """Serve `handler` on a socket; `close` stops accepting and drains."""

    def __init__(
        self, handler: Handler, *, cap: int = MAX_CONNECTIONS, idle_timeout: float = IDLE_TIMEOUT
    ) -> None:
        self.handler = handler
        self.loop = asyncio.get_running_loop()
        self.closing = False
        self._cap = cap
        self._idle = idle_timeout
        #: Insertion-ordered: the oldest first.
        self.connections: dict[Connection, None] = {}
        self._server: asyncio.Server | None = None
        self._sweeper: asyncio.TimerHandle | None = None
        self._drained: asyncio.Event | None = None

    async def start(self, sock: socket.socket) -> int:
        """Serve on `sock` (bound; listening or not); returns its port."""
        self._server = await self.loop.create_server(lambda: Connection(self), sock=sock, backlog=BACKLOG)
        self._sweeper = self.loop.call_later(_SWEEP_SECONDS, self._sweep)
        return int(sock.getsockname()[1])

    def admit(self, conn: Connection) -> None:
        """A new connection: held, and the oldest idle ones closed while more than `cap` are (a
        flood of idle or half-sent connections cannot lock clients out). One waiting for its
        answer (STS, at most the cold wait) is never cut: a thousand SDKs starting at once
        all get theirs."""
        self.connections[conn] = None
        if self.closing:
            conn.close()
            return
        excess = len(self.connections) - self._cap
        if excess <= 0:
            return
        for oldest in list(self.connections):
            if oldest is not conn and not oldest.closing and not oldest.busy:
                oldest.abort()
                excess -= 1
                if excess <= 0:
                    break

    def forget(self, conn: Connection) -> None:
        self.connections.pop(conn, None)
        if not self.connections and self._drained is not None:
            self._drained.set()

    def _sweep(self) -> None:
        deadline = self.loop.time() - self._idle
        for conn in list(self.connections):
            if conn.stamp < deadline and not conn.busy:
                if conn.writing_paused:
                    conn.abort()  # close() would wait for a client that does not read its answers
                else:
                    conn.close()
        self._sweeper = self.loop.call_later(_SWEEP_SECONDS, self._sweep)

    async def close(self, drain: float) -> None:
        """Stop accepting; close idle connections now and busy ones once answered, `drain`
        seconds at most; then cut what is left."""
        self.closing = True
        if self._sweeper is not None:
            self._sweeper.cancel()
        if self._server is not None:
            self._server.close()
        self._drained = asyncio.Event()
        for conn in list(self.connections):
            conn.shutdown()
        if self.connections:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._drained.wait(), drain)
        for conn in list(self.connections):
            conn.abort()
        if self._server is not None:
            await self._server.wait_closed()
