"""The one middleware every request passes: reported to the observer (metrics), then the peer
gate, then the request gate, then the handler — one frame instead of a chain of three."""

from __future__ import annotations

from aiohttp import web
from aiohttp.typedefs import Handler

from imds_proxy.server import appkeys
from imds_proxy.server.gates import request_refusal
from imds_proxy.server.observe import Refusal
from imds_proxy.server.peers import peer_refusal
from imds_proxy.server.watch import route_of


@web.middleware
async def guard(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Answer with the first refusal of the checks, in order, or with the handler."""
    view = request.app[appkeys.LIVE].view  # the listener this request is judged by
    status, refused = 500, None
    try:
        refusal = peer_refusal(request, view.listener)
        if refusal is None:
            refusal = request_refusal(request)
        response = refusal if refusal is not None else await handler(request)
        status = response.status
        refused = response.refused if isinstance(response, Refusal) else None
        return response
    except web.HTTPException as e:
        status = e.status
        raise
    finally:
        observer = request.app[appkeys.OBSERVER]
        observer.request(view.name, route_of(request.rel_url.path), status, refused)
