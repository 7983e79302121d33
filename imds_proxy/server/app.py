"""The application factory: one app per listener, create_app(config, engine, listener)."""

from __future__ import annotations

import time
from collections.abc import Callable

from aiohttp import web

from imds_proxy.config import Config
from imds_proxy.config.container import PATH
from imds_proxy.config.listeners import Listener
from imds_proxy.engine.credentials import Clock, utc_now
from imds_proxy.engine.refresh import CredentialEngine
from imds_proxy.engine.tokens import TokenIssuer
from imds_proxy.server import appkeys, container, expect, imds
from imds_proxy.server.gates import TAIL
from imds_proxy.server.guard import guard
from imds_proxy.server.live import Live
from imds_proxy.server.observe import AuditOnly, RequestObserver


def create_app(
    config: Config,
    engine: CredentialEngine,
    listener: Listener | None = None,
    *,
    clock: Clock = utc_now,
    token_clock: Callable[[], float] = time.time,
    tokens: TokenIssuer | None = None,
    observer: RequestObserver | None = None,
) -> web.Application:
    """The application for one listener (default: the config's first): the peer gate and the
    request gate for every request, then the channels the listener speaks — the IMDS routes for its role, the
    container-credentials sub-app at /v1/credentials — all from `engine`.

    The app never owns the engine: whoever built it (the daemon, exec, a test) runs its
    refresh. Listeners of one daemon share the engine and the token issuer. `observer` hears
    of every request and credential set served (default: the audit line only). What the app
    serves is held in app[appkeys.LIVE]: the daemon's reload swaps config and listener there.
    """
    listener = listener or config.listeners[0]
    started = clock()
    live = Live(config, listener, lambda view: imds.static_tree(view, started))
    app = web.Application(middlewares=[guard])
    app[appkeys.LIVE] = live
    app[appkeys.ENGINE] = engine
    app[appkeys.CLOCK] = clock
    app[appkeys.TOKENS] = tokens or TokenIssuer(token_clock)
    app[appkeys.STARTED] = started
    app[appkeys.OBSERVER] = observer or AuditOnly()
    app.add_subapp(PATH, container.create_app(live, engine))
    deferred = expect.after_the_gates
    app.router.add_route("*", PATH + TAIL, container.not_found, expect_handler=deferred)  # before IMDS's
    imds.setup(app)
    return app
