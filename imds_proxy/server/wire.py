"""A request as the handlers read it (Ask) and an answer as they give it (Reply), and the answer's
bytes on the wire: every answer here is a small, complete body, so its head is written in one go."""

from __future__ import annotations

import email.utils
import http
import time
from collections.abc import Awaitable
from typing import TYPE_CHECKING

from aiohttp.http_parser import RawRequestMessage

if TYPE_CHECKING:
    from multidict import CIMultiDictProxy

TEXT = b"text/plain"
JSON = b"application/json"
#: What the Server header says: which daemon answered (no version: nothing to fingerprint).
SERVER = b"imds-proxy"

_STATUS = {s.value: b"HTTP/1.1 %d %s\r\n" % (s.value, s.phrase.encode()) for s in http.HTTPStatus}


class Ask:
    """One parsed request: what the client sent, and who it is."""

    __slots__ = ("headers", "message", "method", "path", "remote", "target")

    def __init__(self, message: RawRequestMessage, remote: str | None) -> None:
        self.message = message
        self.method: str = message.method
        self.target: str = message.path  # the request line's target, as sent
        self.path: str = message.url.path  # percent-decoded
        self.headers: CIMultiDictProxy[str] = message.headers
        self.remote = remote


class Reply:
    """One complete answer. `refused` names why a client was turned away (the clients_refused
    metric); `hop_limit`, when set, caps the IP TTL of this connection's replies from now on."""

    __slots__ = ("body", "content_type", "extra", "hop_limit", "refused", "status")

    def __init__(
        self,
        status: int,
        body: bytes,
        content_type: bytes = TEXT,
        *,
        headers: tuple[tuple[str, str], ...] = (),
        refused: str | None = None,
    ) -> None:
        self.status = status
        self.body = body
        self.content_type = content_type
        # Our own names and values only (never a request field): no CR or LF can reach them.
        self.extra = _head_lines(headers) if headers else b""
        self.refused = refused
        self.hop_limit: int | None = None

    @classmethod
    def text(
        cls, status: int, text: str, *, headers: tuple[tuple[str, str], ...] = (), refused: str | None = None
    ) -> Reply:
        """A text/plain answer."""
        return cls(status, text.encode(), TEXT, headers=headers, refused=refused)

    def render(self, *, head_only: bool, close: bool, keep_alive_header: bool) -> bytes:
        """The bytes of this answer: status line, headers, body (none for HEAD). `close`: the
        connection ends after it; `keep_alive_header`: an HTTP/1.0 client asked to keep it."""
        head = b"%sContent-Type: %s\r\nContent-Length: %d\r\nDate: %s\r\nServer: %s\r\n%s" % (
            _STATUS.get(self.status) or b"HTTP/1.1 %d Unknown\r\n" % self.status,
            self.content_type,
            len(self.body),
            _date(),
            SERVER,
            self.extra,
        )
        if close:
            head += b"Connection: close\r\n"
        elif keep_alive_header:
            head += b"Connection: keep-alive\r\n"
        return head + b"\r\n" if head_only else head + b"\r\n" + self.body


def _head_lines(headers: tuple[tuple[str, str], ...]) -> bytes:
    return b"".join(b"%s: %s\r\n" % (k.encode(), v.encode()) for k, v in headers)


#: What a handler returns: the answer, or (only when it must wait, e.g. for STS) one to await.
Answer = Reply | Awaitable[Reply]

_date_cache: tuple[int, bytes] = (0, b"")


def _date() -> bytes:
    """The Date header's value (RFC 9110 IMF-fixdate), formatted once per second."""
    global _date_cache
    now = int(time.time())
    if _date_cache[0] != now:
        _date_cache = (now, email.utils.formatdate(now, usegmt=True).encode())
    return _date_cache[1]
