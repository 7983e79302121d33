"""The outermost middleware: every answer reported to the app's observer (the request metrics),
with its route named from a short fixed list so labels stay few."""

from __future__ import annotations

from aiohttp import web
from aiohttp.typedefs import Handler

from imds_proxy.config.container import PATH
from imds_proxy.engine.tokens import TOKEN_PATH
from imds_proxy.server import appkeys
from imds_proxy.server.gates import normalize
from imds_proxy.server.observe import Refusal

_CREDENTIALS = "/latest/meta-data/iam/security-credentials"


def route_of(path: str) -> str:
    """token, credentials, container, metadata or other: what the request was for."""
    path = normalize(path)
    if path == TOKEN_PATH:
        return "token"
    if path.startswith(_CREDENTIALS):  # also -extended
        return "credentials"
    if path.startswith(PATH):
        return "container"
    if path == "/" or path.startswith("/latest"):
        return "metadata"
    return "other"


@web.middleware
async def watch_requests(request: web.Request, handler: Handler) -> web.StreamResponse:
    status, refused = 500, None
    try:
        response = await handler(request)
        status = response.status
        refused = response.refused if isinstance(response, Refusal) else None
        return response
    except web.HTTPException as e:
        status = e.status
        raise
    finally:
        observer = request.config_dict[appkeys.OBSERVER]
        listener = str(request.config_dict[appkeys.LIVE].view.listener)
        observer.request(listener, route_of(request.rel_url.path), status, refused)
