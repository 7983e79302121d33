"""The admin endpoint's site: bound before anything else starts, so /healthz answers during
start-up; the default address is given up with one warning when busy, an asked-for one is not."""

from __future__ import annotations

import logging
from types import TracebackType

from aiohttp import web

from imds_proxy.config.admin import AdminSettings
from imds_proxy.errors import ListenError
from imds_proxy.runtime.reload import listen_socket
from imds_proxy.server.admin import Readiness, Render, create_admin_app

log = logging.getLogger("imds_proxy.admin")


class AdminSite:
    """An async context manager: the admin app on its listener while the block runs."""

    def __init__(self, settings: AdminSettings, render: Render, readiness: Readiness) -> None:
        self._settings = settings
        self._runner = web.AppRunner(create_admin_app(readiness, render), access_log=None, shutdown_timeout=1)
        self.url: str | None = None

    async def __aenter__(self) -> AdminSite:
        listener = self._settings.listener
        if listener is None:
            return self
        try:
            sock = listen_socket(listener, "--admin-listen")
        except ListenError as e:
            if self._settings.explicit:
                raise ListenError(f"admin endpoint: {e}") from None
            log.warning(
                "admin endpoint off: cannot listen on the default %s (%s); set --admin-listen "
                "(admin_listen) to another HOST:PORT, or off",
                listener,
                e.reason,
            )
            return self
        await self._runner.setup()
        await web.SockSite(self._runner, sock).start()
        bound = listener.bound_to(int(self._runner.addresses[0][1]))
        self.url = bound.url  # logged once the daemon serves, with its listeners
        return self

    async def __aexit__(
        self, kind: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self._runner.cleanup()

