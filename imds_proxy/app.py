"""The application factory: create_app(config, engine, ...) -> web.Application."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Callable

from aiohttp import web

from imds_proxy import appkeys, container, imds
from imds_proxy.config import Config
from imds_proxy.credentials import Clock, utc_now
from imds_proxy.gates import request_gate, token_gate
from imds_proxy.refresh import CredentialEngine
from imds_proxy.tokens import TokenIssuer


async def _refresher(app: web.Application) -> AsyncIterator[None]:
    """Run the engine's background refresh for as long as the app runs."""
    task = asyncio.create_task(app[appkeys.ENGINE].run(), name="credential refresher")
    yield
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task


def create_app(
    config: Config,
    engine: CredentialEngine,
    *,
    clock: Clock = utc_now,
    token_clock: Callable[[], float] = time.time,
    tokens: TokenIssuer | None = None,
    role: str | None = None,
    background_refresh: bool = True,
) -> web.Application:
    """The application for one listener: IMDS serving `role` (default: config's default
    role) and the container-credentials route, both from `engine`. A container token
    file must have been loaded into config (channel.resolve) before.

    One app per listener; they share the engine and the token issuer, and only one
    of them runs the background refresh. Tests pass a fake clock and a fake-source engine,
    and may turn the background refresh off to drive it with `engine.tick()`.
    """
    if config.container.token_file is not None and config.container.token is None:
        raise ValueError("load the container token first: channel.resolve(config)")
    app = web.Application(middlewares=[request_gate, token_gate])
    app[appkeys.CONFIG] = config
    app[appkeys.ENGINE] = engine
    app[appkeys.CLOCK] = clock
    app[appkeys.TOKENS] = tokens or TokenIssuer(token_clock)
    app[appkeys.STARTED] = clock()
    app[appkeys.IMDS_ROLE] = role or config.role.name
    container.setup(app)  # before the IMDS catch-all route
    imds.setup(app)
    if background_refresh:
        app.cleanup_ctx.append(_refresher)
    return app
