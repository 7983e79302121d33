"""The container-credentials route (what ECS and EKS Pod Identity serve), with its own
authorization check: the Authorization header must equal the configured token."""

from __future__ import annotations

import functools
import hashlib
import hmac
import json
import logging

from aiohttp import web

from imds_proxy import appkeys, channel
from imds_proxy.credentials import Credentials
from imds_proxy.errors import CredentialsUnavailable
from imds_proxy.gates import normalize, own_authorization

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


@functools.lru_cache(maxsize=16)
def _render(creds: Credentials) -> str:
    return json.dumps(creds.container_document())


def _requested_role(tail: str) -> str | None:
    """What follows the path: `` or `/` → "" (the default role); `/NAME` → NAME; anything
    else (deeper paths, `/v1/credentialsNAME`) → None."""
    if tail and not tail.startswith("/"):
        return None
    parts = normalize(tail).strip("/")
    return None if "/" in parts else parts


@own_authorization
async def get_credentials(request: web.Request) -> web.StreamResponse:
    """GET /v1/credentials[/ROLE] with `Authorization: <token>` (no "Bearer": SDKs send the
    token verbatim)."""
    if request.method not in ("GET", "HEAD"):
        response = refuse(request, 405, "MethodNotAllowed", "use GET")
        response.headers["Allow"] = "GET, HEAD"
        return response
    token = request.app[appkeys.CONFIG].container.token
    if token is None:
        return refuse(
            request, 404, "NotFound", "the container-credentials endpoint is off: set container_token_file"
        )
    # Checked before anything else: without the token a caller learns nothing, not even
    # which roles exist. A local process that can reach the port but cannot read the
    # token file (another user, a browser-driven request, an SSRF-able web app) is refused.
    header = request.headers.get("Authorization")
    if header is None:
        return refuse(request, 401, "Unauthorized", "send the token in the Authorization header")
    if not authorized(header, token):
        return refuse(request, 403, "AccessDenied", "wrong authorization token")

    requested = _requested_role(request.match_info["tail"])
    if requested is None:
        return refuse(request, 404, "NotFound", "no such path")
    clients = request.app[appkeys.CONFIG].clients
    if clients.configured:
        # One sidecar, several containers: each gets the role its address is mapped to and
        # nothing else, whatever it asks for. The same 404 for "not yours" and "no such
        # role", so a container cannot enumerate the others' roles.
        mapped = clients.role_for(request.remote)
        if mapped is None or requested not in ("", mapped):
            return refuse(request, 404, "NotFound", "no such role for this client", requested or mapped)
        role = mapped
    else:
        role = requested or request.app[appkeys.IMDS_ROLE]
        if role not in request.app[appkeys.ENGINE]:
            return refuse(request, 404, "NotFound", "no such role", role)

    try:
        creds = await request.app[appkeys.ENGINE].get(role)
    except CredentialsUnavailable as e:
        log.warning("no container credentials served client=%s role=%s: %s", request.remote, role, e)
        return answer(503, e.code, str(e))
    log.info("served container credentials client=%s role=%s key=%s", request.remote, role, creds.key_suffix)
    return web.Response(text=_render(creds), content_type="application/json")


def setup(app: web.Application) -> None:
    """Add the container route; it must come before the IMDS catch-all."""
    app.router.add_route("*", channel.PATH + "{tail:.*}", get_credentials)
