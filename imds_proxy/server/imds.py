"""The IMDS routes: the token PUT, the session-token check every GET passes, and the metadata
tree, with thin handlers."""

from __future__ import annotations

import dataclasses
import logging
import re
from collections.abc import Awaitable, Callable
from datetime import datetime

from aiohttp import web

from imds_proxy.engine import metadata
from imds_proxy.engine.credentials import imds_error_document, to_json
from imds_proxy.engine.tokens import TOKEN_HEADER, TOKEN_PATH, TTL_HEADER, parse_ttl
from imds_proxy.errors import CredentialsUnavailable
from imds_proxy.server import appkeys, expect
from imds_proxy.server.gates import TAIL, normalize, refuse
from imds_proxy.server.hops import limit_hops
from imds_proxy.server.live import View
from imds_proxy.server.observe import Channel, CredentialsServed
from imds_proxy.server.peers import is_own_peer

log = logging.getLogger("imds_proxy.imds")

CREDS = "/latest/meta-data/iam/security-credentials"
CREDS_EXT = "/latest/meta-data/iam/security-credentials-extended"
_VERSIONED_TOKEN = re.compile(r"/[0-9-]+/api/token")

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def text(body: str) -> web.Response:
    """IMDS answers everything as text/plain (EC2 user guide), without a trailing newline."""
    return web.Response(text=body, content_type="text/plain")


def listing(*items: str) -> str:
    """LF-separated, no final LF: botocore pastes the role listing into the next URL as is."""
    return "\n".join(items)


def static_tree(view: View, started: datetime) -> dict[str, str]:
    """Every path whose answer does not change until the next reload, rendered once."""
    config, role = view.config, view.role
    spec = config.roles[role]
    # The instance profile is named after the role this listener serves.
    ident = dataclasses.replace(config.identity, account_id=spec.account_id, instance_profile_name=role)
    return {
        "/": listing("latest"),
        "/latest": listing("dynamic", "meta-data"),
        "/latest/meta-data": listing(
            "ami-id",
            "hostname",
            "iam/",
            "instance-id",
            "instance-type",
            "local-hostname",
            "local-ipv4",
            "placement/",
        ),
        "/latest/meta-data/ami-id": metadata.IMAGE_ID,
        "/latest/meta-data/hostname": "localhost",
        "/latest/meta-data/local-hostname": "localhost",
        "/latest/meta-data/local-ipv4": metadata.PRIVATE_IP,
        "/latest/meta-data/instance-id": ident.instance_id,
        "/latest/meta-data/instance-type": ident.instance_type,
        "/latest/meta-data/placement": listing("availability-zone", "region"),
        "/latest/meta-data/placement/availability-zone": ident.availability_zone,
        "/latest/meta-data/placement/region": ident.region,
        "/latest/meta-data/iam": listing("info", "security-credentials/"),
        "/latest/meta-data/iam/info": to_json(metadata.iam_info(ident, started)),
        CREDS: role,
        CREDS_EXT: role,
        "/latest/dynamic": listing("instance-identity/"),
        "/latest/dynamic/instance-identity": listing("document"),
        "/latest/dynamic/instance-identity/document": to_json(metadata.identity_document(ident, started)),
    }


async def put_token(request: web.Request) -> web.StreamResponse:
    """`PUT /latest/api/token`: a session token for the TTL asked, echoed in a header
    (the Go SDKs fall back to IMDSv1 without it)."""
    raw = request.headers.get(TTL_HEADER)
    ttl = parse_ttl(raw)
    if ttl is None:
        reason = "missing" if raw is None else "invalid"
        return refuse(request, 400, f"Bad Request ({TTL_HEADER} {reason}: give 1 to 21600)")
    token = request.app[appkeys.TOKENS].issue(ttl)
    response = text(token)
    response.headers[TTL_HEADER] = str(ttl)
    limit_hops(request, response, request.app[appkeys.LIVE].view.listener.hop_limit)
    return response


async def get_credentials(request: web.Request, view: View, extended: bool) -> web.StreamResponse:
    """The role's credential document; EC2's error document when none are valid."""
    role = view.role
    # With a client map, a container on the network must not get this listener's role by
    # speaking IMDS instead of the container protocol (which the map guards).
    # This host's own processes are trusted as on an instance, over any of its addresses.
    if not view.listener.clients.allows(request.remote, role, loopback_exempt=True) and (
        not is_own_peer(request.remote)
    ):
        why = f"Not Found (role {role} is not mapped to this client)"
        return refuse(request, 404, why, refused="not_mapped")
    engine = request.app[appkeys.ENGINE]
    try:
        served = await engine.served(role)
    except CredentialsUnavailable as e:
        log.warning("no credentials served client=%s role=%s: %s", request.remote, role, e)
        now = request.app[appkeys.CLOCK]()
        return text(to_json(imds_error_document(e.code, str(e), now)))
    token = request.headers.get(TOKEN_HEADER)
    channel: Channel = "imdsv1" if token is None else "imdsv2"
    event = CredentialsServed.of(request, role, served.credentials.key_suffix, channel, token)
    request.app[appkeys.OBSERVER].served(event)
    body = served.imds_extended if extended else served.imds
    return web.Response(body=body, content_type="text/plain")


def token_refusal(request: web.Request, view: View) -> web.Response | None:
    """IMDSv2: every GET needs a valid session token (HttpTokens=required), unless IMDSv1
    is enabled, in which case only a *missing* token is let through. None: go on."""
    token = request.headers.get(TOKEN_HEADER)
    if token is None:
        if view.config.imdsv1:
            return None
        return refuse(request, 401, "Unauthorized (IMDSv2 token required)", refused="token_missing")
    if not request.app[appkeys.TOKENS].verify(token):
        return refuse(request, 401, "Unauthorized (invalid or expired token)", refused="token_invalid")
    return None


async def dispatch(request: web.Request) -> web.StreamResponse:
    """Route every IMDS request on its normalized path."""
    path = normalize(request.rel_url.path)
    if path == TOKEN_PATH:
        if request.method == "PUT":
            return await put_token(request)
        return _not_allowed(request, "PUT")
    if request.method == "PUT" and _VERSIONED_TOKEN.fullmatch(path):
        # EC2 answers a token PUT on a versioned path with 403, by design.
        return refuse(request, 403, "Forbidden (tokens come from /latest/api/token)")
    if request.method not in ("GET", "HEAD"):
        return _not_allowed(request, "GET, HEAD")
    view = request.app[appkeys.LIVE].view  # one state for the whole request, whatever a reload does
    if (refusal := token_refusal(request, view)) is not None:
        return refusal
    body = view.static.get(path)
    if body is not None:
        return text(body)
    parent, _, leaf = path.rpartition("/")
    if parent in (CREDS, CREDS_EXT) and leaf == view.role:
        return await get_credentials(request, view, extended=parent == CREDS_EXT)
    return refuse(request, 404, "Not Found")


def _not_allowed(request: web.Request, allow: str) -> web.Response:
    response = refuse(request, 405, "Method Not Allowed")
    response.headers["Allow"] = allow
    return response


def setup(app: web.Application) -> None:
    """Add the IMDS routes to an app."""
    app.router.add_route("*", "/" + TAIL, dispatch, expect_handler=expect.after_the_gates)
