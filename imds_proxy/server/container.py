"""The container-credentials sub-app (what ECS and EKS Pod Identity serve), mounted at
/v1/credentials, with its own authorization middleware: the Authorization header must equal the
configured token."""

from __future__ import annotations

import hashlib
import hmac
import json
import logging

from aiohttp import web
from aiohttp.typedefs import Handler

from imds_proxy.engine.refresh import CredentialEngine
from imds_proxy.errors import CredentialsUnavailable
from imds_proxy.server import appkeys, expect
from imds_proxy.server.gates import TAIL, normalize
from imds_proxy.server.live import Live
from imds_proxy.server.observe import CredentialsServed, Refusal

log = logging.getLogger("imds_proxy.container")


def answer(status: int, code: str, message: str, refused: str | None = None) -> web.Response:
    """An error in the shape SDKs read: the JS SDK reports `Code` and `Message` of a 4xx."""
    body = json.dumps({"Code": code, "Message": message})
    return Refusal(text=body, status=status, content_type="application/json", refused=refused)


def refuse(
    request: web.Request,
    status: int,
    code: str,
    message: str,
    role: str | None = None,
    *,
    refused: str | None = None,
) -> web.Response:
    """A refusal, logged with the client address (never with the header it sent); `refused`
    names why a client was turned away (the clients_refused metric)."""
    log.info(
        "refused status=%d client=%s %s %s%s: %s",
        status,
        request.remote,
        request.method,
        request.rel_url.path,
        f" role={role}" if role else "",
        message,
    )
    return answer(status, code, message, refused)


def _digest(value: str) -> bytes:
    return hashlib.sha256(value.encode("utf-8", "replace")).digest()


def authorized(header: str, token: str) -> bool:
    """Constant-time comparison; hashing first means not even the length leaks."""
    return hmac.compare_digest(_digest(header), _digest(token))


def _requested_role(tail: str) -> str | None:
    """What follows PATH/: nothing → "" (the listener's role); `NAME` → NAME; deeper paths →
    None."""
    parts = normalize(tail).strip("/")
    return None if "/" in parts else parts


@web.middleware
async def authorization_gate(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Checked before anything else: without the token a caller learns nothing, not even which
    roles exist. A local process that can reach the port but cannot read the token file
    (another user, a browser-driven request, an SSRF-able web app) is refused."""
    view = request.app[appkeys.LIVE].view
    token = view.config.container.token
    if "container" not in view.listener.channels or token is None:
        return await not_found(request)
    if request.method not in ("GET", "HEAD"):
        response = refuse(request, 405, "MethodNotAllowed", "use GET")
        response.headers["Allow"] = "GET, HEAD"
        return response
    header = request.headers.get("Authorization")
    if header is None:
        hint = "send the token in the Authorization header"
        return refuse(request, 401, "Unauthorized", hint, refused="no_authorization")
    if not authorized(header, token):
        return refuse(request, 403, "AccessDenied", "wrong authorization token", refused="wrong_token")
    return await handler(request)


async def get_credentials(request: web.Request) -> web.StreamResponse:
    """GET /v1/credentials[/ROLE] with `Authorization: <token>` (no "Bearer": SDKs send the
    token verbatim)."""
    requested = _requested_role(request.match_info.get("tail", ""))
    if requested is None:
        return refuse(request, 404, "NotFound", "no such path")
    view = request.app[appkeys.LIVE].view
    listener = view.listener
    engine = request.app[appkeys.ENGINE]
    if listener.clients.configured:
        # One sidecar, several containers: each gets the role its address is mapped to and
        # nothing else, whatever it asks for. The same 404 for "not yours" and "no such
        # role", so a container cannot enumerate the others' roles.
        mapped = listener.clients.role_for(request.remote)
        if mapped is None or requested not in ("", mapped):
            why = "no such role for this client"
            return refuse(request, 404, "NotFound", why, requested or mapped, refused="not_mapped")
        role = mapped
    else:
        role = requested or view.role
        if role not in engine:
            return refuse(request, 404, "NotFound", "no such role", role)

    try:
        served = await engine.served(role)
    except CredentialsUnavailable as e:
        log.warning("no container credentials served client=%s role=%s: %s", request.remote, role, e)
        return answer(503, e.code, str(e))
    header = request.headers.get("Authorization")
    event = CredentialsServed.of(request, role, served.credentials.key_suffix, "container", header)
    request.config_dict[appkeys.OBSERVER].served(event)
    return web.Response(body=served.container, content_type="application/json")


async def not_found(request: web.Request) -> web.StreamResponse:
    """Paths beside the sub-app (`/v1/credentialsNAME`), and the whole path on a listener that
    does not speak the container channel: a 404 that says which, never an IMDS refusal."""
    view = request.config_dict[appkeys.LIVE].view
    if "container" in view.listener.channels and view.config.container.token is not None:
        return refuse(request, 404, "NotFound", "no such path")
    return refuse(
        request, 404, "NotFound", "the container-credentials endpoint is off: set container_token_file"
    )


def create_app(live: Live, engine: CredentialEngine) -> web.Application:
    """The sub-app to mount at PATH. It answers as the endpoint only while the live listener's
    channels include "container" and a token is configured (a reload can change either)."""
    app = web.Application(middlewares=[authorization_gate])
    app[appkeys.LIVE] = live
    app[appkeys.ENGINE] = engine
    app.router.add_route("*", "", get_credentials, expect_handler=expect.after_the_gates)
    app.router.add_route("*", "/" + TAIL, get_credentials, expect_handler=expect.after_the_gates)
    return app
