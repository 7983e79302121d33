"""One client connection: HTTP/1.1 parsed by aiohttp's parser (llhttp), each request answered in
order — at once when the handler has its answer (the common case: no task, no await), through one
task per connection when it must wait (STS). Keep-alive, pipelining, HEAD and HTTP/1.0 as HTTP says."""

from __future__ import annotations

import asyncio
import collections
import errno
import logging
import socket
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

from aiohttp.base_protocol import BaseProtocol
from aiohttp.http import HttpVersion10
from aiohttp.http_exceptions import HttpProcessingError
from aiohttp.http_parser import HttpRequestParser, RawRequestMessage
from aiohttp.streams import EMPTY_PAYLOAD, StreamReader

from imds_proxy.server.wire import Answer, Ask, Reply

if TYPE_CHECKING:
    from imds_proxy.server.site import Site

log = logging.getLogger("imds_proxy.protocol")

#: What one request may carry (aiohttp's own limits for a web server).
READ_BUFSIZE = 2**16
MAX_LINE = MAX_FIELD = 8190
MAX_HEADERS = 128

Handler = Callable[[Ask], Answer]
_Parsed = tuple[RawRequestMessage, StreamReader]


class Connection(BaseProtocol):
    """A connection of a Site. `stamp` is when it last completed an answer (or was accepted):
    the site closes it IDLE_TIMEOUT later unless it is `busy` answering."""

    __slots__ = ("_queue", "_remote", "_site", "_task", "closing", "stamp")

    def __init__(self, site: Site) -> None:
        loop = site.loop
        parser = HttpRequestParser(
            self,
            loop,
            READ_BUFSIZE,
            max_line_size=MAX_LINE,
            max_field_size=MAX_FIELD,
            max_headers=MAX_HEADERS,
            auto_decompress=False,  # no body is read here
        )
        super().__init__(loop, parser)
        self._site = site
        self._remote: str | None = None
        self._queue: collections.deque[_Parsed] = collections.deque()
        self._task: asyncio.Task[None] | None = None
        self.closing = False
        self.stamp = loop.time()

    @property
    def busy(self) -> bool:
        return self._task is not None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        super().connection_made(transport)
        peer = transport.get_extra_info("peername")
        self._remote = str(peer[0]) if isinstance(peer, (list, tuple)) else None
        self._site.admit(self)

    def connection_lost(self, exc: BaseException | None) -> None:
        super().connection_lost(exc)
        self.closing = True
        self._queue.clear()
        if self._task is not None:
            self._task.cancel()
        self._site.forget(self)

    def pause_writing(self) -> None:
        """The client does not read its answers: read no more requests until it does."""
        super().pause_writing()
        self._pause_transport_reading()

    def resume_writing(self) -> None:
        super().resume_writing()
        if self._task is None:
            self._resume_transport_reading()

    def data_received(self, data: bytes) -> None:
        if self.closing or self._parser is None:
            return
        try:
            messages, _upgraded, _tail = self._parser.feed_data(data)
        except HttpProcessingError as e:
            self._malformed(e)
            return
        for parsed in messages:
            if self.closing:
                return
            if self._task is not None:
                self._queue.append(parsed)
                continue
            pending = self._answer(parsed)
            if pending is not None:
                self._task = self._loop.create_task(self._drain(pending))
                self._pause_transport_reading()

    def shutdown(self) -> None:
        """Close now when idle, else after the answers in flight (the site is closing)."""
        if self._task is None:
            self.close()  # else _drain closes it when done: the site is closing

    def close(self) -> None:
        self.closing = True
        if self.transport is not None:
            self.transport.close()

    def abort(self) -> None:
        self.closing = True
        if self.transport is not None:
            self.transport.abort()

    def _answer(self, parsed: _Parsed) -> tuple[Ask, Awaitable[Reply], bool] | None:
        """Answer one request now, or return what must be awaited to answer it."""
        message, payload = parsed
        ask = Ask(message, self._remote)
        # A body is never read here: answer, then end the connection rather than parse it.
        close = message.should_close or message.upgrade or payload is not EMPTY_PAYLOAD or self._site.closing
        try:
            answer = self._site.handler(ask)
        except Exception as e:
            answer = self._failed(e)
            close = True
        if isinstance(answer, Reply):
            self._write(ask, answer, close)
            return None
        return ask, answer, close

    async def _drain(self, pending: tuple[Ask, Awaitable[Reply], bool]) -> None:
        """Await one answer, then answer what was queued behind it, in order."""
        try:
            while True:
                ask, answer, close = pending
                try:
                    reply = await answer
                except Exception as e:
                    reply, close = self._failed(e), True
                if self.closing:
                    return
                self._write(ask, reply, close)
                while self._queue and not self.closing:
                    nxt = self._answer(self._queue.popleft())
                    if nxt is not None:
                        pending = nxt
                        break
                else:
                    return
        finally:
            self._task = None
            if self._site.closing:
                self.close()
            elif not self.closing and not self._paused:
                self._resume_transport_reading()

    def _write(self, ask: Ask, reply: Reply, close: bool) -> None:
        transport = self.transport
        if transport is None:
            return
        if reply.hop_limit is not None:
            limit_hops(transport, reply.hop_limit)
        keep_alive_header = not close and ask.message.version == HttpVersion10
        head_only = ask.method == "HEAD"
        transport.write(reply.render(head_only=head_only, close=close, keep_alive_header=keep_alive_header))
        self.stamp = self._loop.time()
        if close:
            self.close()

    def _malformed(self, e: HttpProcessingError) -> None:
        """Bytes that are not HTTP: one line naming the kind (never the bytes), a short 400."""
        status = e.code if 400 <= e.code < 500 else 400
        log.info("refused malformed request status=%d client=%s: %s", status, self._remote, type(e).__name__)
        if self.transport is not None:
            reply = Reply.text(status, f"{status} - Bad Request (not a well-formed HTTP/1.1 request)")
            self.transport.write(reply.render(head_only=False, close=True, keep_alive_header=False))
        self.close()

    def _failed(self, e: Exception) -> Reply:
        """A bug of ours: its kind and where (the traceback has no request data), and a 500."""
        log.error("error handling a request client=%s: %s", self._remote, type(e).__name__, exc_info=e)
        return Reply.text(500, "500 - Internal Server Error")


def limit_hops(transport: asyncio.Transport, hops: int) -> None:
    """Cap the IP TTL / IPv6 hop limit of everything this connection sends from now on, the
    token just issued and any retransmission of it included (EC2's HttpPutResponseHopLimit)."""
    sock: Any = transport.get_extra_info("socket")
    if sock is None:
        return
    try:
        if sock.family == socket.AF_INET6:
            sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_UNICAST_HOPS, hops)
        # Also on IPv6 sockets: a dual-stack socket speaks IPv4 to v4-mapped peers.
        sock.setsockopt(socket.IPPROTO_IP, socket.IP_TTL, hops)
    except OSError as e:
        if e.errno != errno.EBADF:
            log.warning("cannot set the token reply's hop limit: %s", e.strerror)
