"""The daemon's own listener (server/site.py) as an aiohttp test server, so the test client and
fixtures of pytest-aiohttp talk to the real request path over loopback."""

from __future__ import annotations

import asyncio
import socket
from typing import Any

from aiohttp.test_utils import BaseTestServer
from aiohttp.web_runner import BaseRunner
from yarl import URL

from imds_proxy.server.app import App
from imds_proxy.server.site import Site


class ProxyServer(BaseTestServer):
    """`app` served by a Site on 127.0.0.1 (or `host`) at a free port."""

    def __init__(self, app: App, *, host: str = "127.0.0.1", **kwargs: Any) -> None:
        super().__init__(host=host, **kwargs)
        self.app = app
        self.site: Site | None = None

    @property
    def started(self) -> bool:
        return self.site is not None

    async def start_server(self, loop: asyncio.AbstractEventLoop | None = None, **kwargs: Any) -> None:
        if self.site is not None:
            return
        family = socket.AF_INET6 if ":" in self.host else socket.AF_INET
        sock = socket.socket(family, socket.SOCK_STREAM)
        sock.bind((self.host, self.port or 0))
        sock.listen()
        self.site = Site(self.app)
        self.port = await self.site.start(sock)
        host = f"[{self.host}]" if family == socket.AF_INET6 else self.host
        self.scheme = "http"
        self._root = URL(f"http://{host}:{self.port}")

    async def _make_runner(self, **kwargs: Any) -> BaseRunner[Any]:
        raise NotImplementedError("a ProxyServer has a Site, not an aiohttp runner")

    async def close(self) -> None:
        if self.site is not None and not self.closed:
            await self.site.close(1.0)
            self._root = None
            self._closed = True
