"""The container-credentials channel (what ECS and EKS Pod Identity serve) at /v1/credentials,
with its own authorization check first: the Authorization header must equal the configured
token."""

from __future__ import annotations

import hashlib
import hmac
import json
import logging

from imds_proxy.config.container import PATH
from imds_proxy.engine.credentials import Served
from imds_proxy.errors import CredentialsUnavailable
from imds_proxy.server.gates import normalize
from imds_proxy.server.live import View
from imds_proxy.server.observe import CredentialsServed
from imds_proxy.server.parts import Parts
from imds_proxy.server.wire import JSON, Answer, Ask, Reply

log = logging.getLogger("imds_proxy.container")


def error_body(code: str, message: str) -> bytes:
    """An error in the shape SDKs read: the JS SDK reports `Code` and `Message` of a 4xx."""
    return json.dumps({"Code": code, "Message": message}).encode()


def answer(status: int, code: str, message: str, refused: str | None = None, **headers: str) -> Reply:
    """An error answer (error_body)."""
    return Reply(status, error_body(code, message), JSON, headers=tuple(headers.items()), refused=refused)


def refuse(
    ask: Ask,
    status: int,
    code: str,
    message: str,
    role: str | None = None,
    *,
    refused: str | None = None,
    **headers: str,
) -> Reply:
    """A refusal, logged with the client address (never with the header it sent); `refused`
    names why a client was turned away (the clients_refused metric)."""
    log.info(
        "refused status=%d client=%s %s %s%s: %s",
        status,
        ask.remote,
        ask.method,
        ask.path,
        f" role={role}" if role else "",
        message,
    )
    return answer(status, code, message, refused, **headers)


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


def dispatch(parts: Parts, ask: Ask, view: View) -> Answer:
    """Every request under PATH. The token is checked before anything else: without it a
    caller learns nothing, not even which roles exist. A local process that can reach the port
    but cannot read the token file (another user, a browser-driven request, an SSRF-able web
    app) is refused."""
    path = ask.path
    token = view.container_token
    if token is None or (len(path) > len(PATH) and path[len(PATH)] != "/"):
        return not_found(ask, view)
    if ask.method not in ("GET", "HEAD"):
        return refuse(ask, 405, "MethodNotAllowed", "use GET", Allow="GET, HEAD")
    header = ask.headers.get("Authorization")
    if header is None:
        hint = "send the token in the Authorization header"
        return refuse(ask, 401, "Unauthorized", hint, refused="no_authorization")
    if not authorized(header, token):
        return refuse(ask, 403, "AccessDenied", "wrong authorization token", refused="wrong_token")
    return get_credentials(parts, ask, view, header)


def get_credentials(parts: Parts, ask: Ask, view: View, header: str) -> Answer:
    """GET /v1/credentials[/ROLE] with `Authorization: <token>` (no "Bearer": SDKs send the
    token verbatim)."""
    requested = _requested_role(ask.path[len(PATH) :])
    if requested is None:
        return refuse(ask, 404, "NotFound", "no such path")
    listener = view.listener
    engine = parts.engine
    if listener.clients.configured:
        # One sidecar, several containers: each gets the role its address is mapped to and
        # nothing else, whatever it asks for. The same 404 for "not yours" and "no such
        # role", so a container cannot enumerate the others' roles.
        mapped = listener.clients.role_for(ask.remote)
        if mapped is None or requested not in ("", mapped):
            why = "no such role for this client"
            return refuse(ask, 404, "NotFound", why, requested or mapped, refused="not_mapped")
        role = mapped
    else:
        role = requested or view.role
        if role not in engine:
            return refuse(ask, 404, "NotFound", "no such role", role)
    served = engine.ready(role)
    if served is None:
        return _credentials_later(parts, ask, role, header)
    return _credentials(parts, ask, role, served, header)


async def _credentials_later(parts: Parts, ask: Ask, role: str, header: str) -> Reply:
    try:
        served = await parts.engine.served(role)
    except CredentialsUnavailable as e:
        log.warning("no container credentials served client=%s role=%s: %s", ask.remote, role, e)
        return answer(503, e.code, str(e))
    return _credentials(parts, ask, role, served, header)


def _credentials(parts: Parts, ask: Ask, role: str, served: Served, header: str) -> Reply:
    parts.observer.served(CredentialsServed.of(ask, role, served.key_suffix, "container", header))
    return Reply(200, served.container, JSON)


def not_found(ask: Ask, view: View) -> Reply:
    """Paths beside the channel (`/v1/credentialsNAME`), and the whole path on a listener that
    does not speak the container channel: a 404 that says which, never an IMDS refusal."""
    if view.container_token is not None:
        return refuse(ask, 404, "NotFound", "no such path")
    return refuse(ask, 404, "NotFound", "the container-credentials endpoint is off: set container_token_file")
