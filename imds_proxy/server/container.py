"""The container-credentials sub-app (what ECS and EKS Pod Identity serve), mounted at
/v1/credentials, with its own authorization middleware: the Authorization header must equal the
configured token."""

from __future__ import annotations

import hashlib
import hmac
import logging

from aiohttp import web
from aiohttp.typedefs import Handler

from imds_proxy.config import Config
from imds_proxy.config.listeners import Listener
from imds_proxy.engine.refresh import CredentialEngine
from imds_proxy.errors import CredentialsUnavailable
from imds_proxy.server import appkeys, expect
from imds_proxy.server.gates import TAIL, normalize

log = logging.getLogger("imds_proxy.container")


def answer(status: int, code: str, message: str) -> web.Response:
    """An error in the shape SDKs read: the JS SDK reports `Code` and `Message` of a 4xx."""
    return web.json_response({"Code": code, "Message": message}, status=status)


def refuse(
    request: web.Request, status: int, code: str, message: str, role: str | None = None
) -> web.Response:
    """A refusal, logged with the client address (never with the header it sent)."""
    log.info(
        "refused status=%d client=%s %s %s%s: %s",
        status,
        request.remote,
        request.method,
        request.rel_url.path,
        f" role={role}" if role else "",
        message,
    )
    return answer(status, code, message)


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
    if request.method not in ("GET", "HEAD"):
        response = refuse(request, 405, "MethodNotAllowed", "use GET")
        response.headers["Allow"] = "GET, HEAD"
        return response
    header = request.headers.get("Authorization")
    if header is None:
        return refuse(request, 401, "Unauthorized", "send the token in the Authorization header")
    if not authorized(header, request.app[TOKEN]):
        return refuse(request, 403, "AccessDenied", "wrong authorization token")
    return await handler(request)


async def get_credentials(request: web.Request) -> web.StreamResponse:
    """GET /v1/credentials[/ROLE] with `Authorization: <token>` (no "Bearer": SDKs send the
    token verbatim)."""
    requested = _requested_role(request.match_info.get("tail", ""))
    if requested is None:
        return refuse(request, 404, "NotFound", "no such path")
    listener = request.app[appkeys.LISTENER]
    engine = request.app[appkeys.ENGINE]
    if listener.clients.configured:
        # One sidecar, several containers: each gets the role its address is mapped to and
        # nothing else, whatever it asks for. The same 404 for "not yours" and "no such
        # role", so a container cannot enumerate the others' roles.
        mapped = listener.clients.role_for(request.remote)
        if mapped is None or requested not in ("", mapped):
            return refuse(request, 404, "NotFound", "no such role for this client", requested or mapped)
        role = mapped
    else:
        role = requested or request.app[appkeys.CONFIG].listener_role(listener)
        if role not in engine:
            return refuse(request, 404, "NotFound", "no such role", role)

    try:
        served = await engine.served(role)
    except CredentialsUnavailable as e:
        log.warning("no container credentials served client=%s role=%s: %s", request.remote, role, e)
        return answer(503, e.code, str(e))
    key = served.credentials.key_suffix
    log.info("served container credentials client=%s role=%s key=%s", request.remote, role, key)
    return web.Response(body=served.container, content_type="application/json")


async def not_found(request: web.Request) -> web.StreamResponse:
    """Paths beside the sub-app (`/v1/credentialsNAME`), and the whole path on a listener that
    does not speak the container channel: a 404 that says which, never an IMDS refusal."""
    if "container" in request.app[appkeys.LISTENER].channels:
        return refuse(request, 404, "NotFound", "no such path")
    return refuse(
        request, 404, "NotFound", "the container-credentials endpoint is off: set container_token_file"
    )


#: The token this sub-app's clients must send.
TOKEN = web.AppKey("container_token", str)


def create_app(config: Config, engine: CredentialEngine, listener: Listener) -> web.Application:
    """The sub-app to mount at PATH on a listener whose channels include "container"."""
    if config.container.token is None:
        raise ValueError("the container endpoint is off: no token is configured")
    app = web.Application(middlewares=[authorization_gate])
    app[TOKEN] = config.container.token
    app[appkeys.CONFIG] = config
    app[appkeys.ENGINE] = engine
    app[appkeys.LISTENER] = listener
    app.router.add_route("*", "", get_credentials, expect_handler=expect.after_the_gates)
    app.router.add_route("*", "/" + TAIL, get_credentials, expect_handler=expect.after_the_gates)
    return app
