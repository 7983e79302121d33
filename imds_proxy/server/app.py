"""The request path of one listener: create_app(config, engine, listener) gives the handler its
Site serves — the peer gate, the request gate, then the channel the path names."""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable

from imds_proxy.config import Config
from imds_proxy.config.container import PATH
from imds_proxy.config.listeners import Listener
from imds_proxy.engine.credentials import Clock, utc_now
from imds_proxy.engine.refresh import CredentialEngine
from imds_proxy.engine.tokens import TokenIssuer
from imds_proxy.server import container, imds
from imds_proxy.server.gates import request_refusal
from imds_proxy.server.live import Live, View
from imds_proxy.server.observe import AuditOnly, RequestObserver
from imds_proxy.server.parts import Parts
from imds_proxy.server.peers import peer_refusal
from imds_proxy.server.watch import route_of
from imds_proxy.server.wire import Answer, Ask, Reply


class App:
    """One listener's handler: every request is reported to the observer (metrics), then
    answered with the first refusal of the checks, in order, or by its channel."""

    def __init__(self, parts: Parts) -> None:
        self.parts = parts
        self.live = parts.live

    def __call__(self, ask: Ask) -> Answer:
        view = self.live.view  # the listener this request is judged by, whatever a reload does
        answer = peer_refusal(ask, view.listener) or request_refusal(ask) or self._channel(ask, view)
        if isinstance(answer, Reply):
            self.parts.observer.request(view.name, route_of(ask.path), answer.status, answer.refused)
            return answer
        return self._later(ask, view, answer)

    def _channel(self, ask: Ask, view: View) -> Answer:
        if ask.path.startswith(PATH):
            return container.dispatch(self.parts, ask, view)
        return imds.dispatch(self.parts, ask, view)

    async def _later(self, ask: Ask, view: View, pending: Awaitable[Reply]) -> Reply:
        status, refused = 500, None
        try:
            reply = await pending
            status, refused = reply.status, reply.refused
            return reply
        finally:
            self.parts.observer.request(view.name, route_of(ask.path), status, refused)


def create_app(
    config: Config,
    engine: CredentialEngine,
    listener: Listener | None = None,
    *,
    clock: Clock = utc_now,
    token_clock: Callable[[], float] = time.time,
    tokens: TokenIssuer | None = None,
    observer: RequestObserver | None = None,
) -> App:
    """The handler for one listener (default: the config's first): the IMDS routes for its
    role, the container channel at /v1/credentials when the listener speaks it, all from
    `engine`.

    The app never owns the engine: whoever built it (the daemon, exec, a test) runs its
    refresh. Listeners of one daemon share the engine and the token issuer. `observer` hears
    of every request and credential set served (default: the audit line only). What the app
    serves is held in app.live: the daemon's reload swaps config and listener there.
    """
    listener = listener or config.listeners[0]
    started = clock()
    live = Live(config, listener, lambda view: imds.static_tree(view, started))
    parts = Parts(engine, tokens or TokenIssuer(token_clock), clock, started, observer or AuditOnly(), live)
    return App(parts)
