"""The IMDS routes: the token PUT, the session-token check every GET passes, and the metadata
tree, with thin handlers; each answers at once unless it must wait for STS."""

from __future__ import annotations

import dataclasses
import logging
import re
from datetime import datetime

from imds_proxy.engine import metadata
from imds_proxy.engine.credentials import Served, imds_error_document, to_json
from imds_proxy.engine.tokens import TOKEN_HEADER, TOKEN_PATH, TTL_HEADER, parse_ttl
from imds_proxy.errors import CredentialsUnavailable
from imds_proxy.server.gates import normalize, refuse
from imds_proxy.server.live import View
from imds_proxy.server.observe import Channel, CredentialsServed
from imds_proxy.server.parts import Parts
from imds_proxy.server.peers import is_own_peer
from imds_proxy.server.wire import Answer, Ask, Reply

log = logging.getLogger("imds_proxy.imds")

CREDS = "/latest/meta-data/iam/security-credentials"
CREDS_EXT = "/latest/meta-data/iam/security-credentials-extended"
_VERSIONED_TOKEN = re.compile(r"/[0-9-]+/api/token")


def text(body: str) -> Reply:
    """IMDS answers everything as text/plain (EC2 user guide), without a trailing newline."""
    return Reply.text(200, body)


def listing(*items: str) -> str:
    """LF-separated, no final LF: botocore pastes the role listing into the next URL as is."""
    return "\n".join(items)


def static_tree(view: View, started: datetime) -> dict[str, Reply]:
    """Every path whose answer does not change until the next reload, rendered once."""
    config, role = view.config, view.role
    spec = config.roles[role]
    # The instance profile is named after the role this listener serves.
    ident = dataclasses.replace(config.identity, account_id=spec.account_id, instance_profile_name=role)
    tree = {
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
    return {path: text(body) for path, body in tree.items()}


def put_token(parts: Parts, ask: Ask, view: View) -> Reply:
    """`PUT /latest/api/token`: a session token for the TTL asked, echoed in a header
    (the Go SDKs fall back to IMDSv1 without it), sent at most the listener's hop limit."""
    raw = ask.headers.get(TTL_HEADER)
    ttl = parse_ttl(raw)
    if ttl is None:
        reason = "missing" if raw is None else "invalid"
        return refuse(ask, 400, f"Bad Request ({TTL_HEADER} {reason}: give 1 to 21600)")
    reply = Reply.text(200, parts.tokens.issue(ttl), headers=((TTL_HEADER, str(ttl)),))
    reply.hop_limit = view.listener.hop_limit
    return reply


def get_credentials(parts: Parts, ask: Ask, view: View, extended: bool) -> Answer:
    """The role's credential document; EC2's error document when none are valid."""
    role = view.role
    # With a client map, a container on the network must not get this listener's role by
    # speaking IMDS instead of the container protocol (which the map guards).
    # This host's own processes are trusted as on an instance, over any of its addresses.
    if not view.listener.clients.allows(ask.remote, role, loopback_exempt=True) and (
        not is_own_peer(ask.remote)
    ):
        why = f"Not Found (role {role} is not mapped to this client)"
        return refuse(ask, 404, why, refused="not_mapped")
    served = parts.engine.ready(role)
    if served is None:
        return _credentials_later(parts, ask, role, extended)
    return _credentials(parts, ask, role, served, extended)


async def _credentials_later(parts: Parts, ask: Ask, role: str, extended: bool) -> Reply:
    try:
        served = await parts.engine.served(role)
    except CredentialsUnavailable as e:
        log.warning("no credentials served client=%s role=%s: %s", ask.remote, role, e)
        return text(to_json(imds_error_document(e.code, str(e), parts.clock())))
    return _credentials(parts, ask, role, served, extended)


def _credentials(parts: Parts, ask: Ask, role: str, served: Served, extended: bool) -> Reply:
    token = ask.headers.get(TOKEN_HEADER)
    channel: Channel = "imdsv1" if token is None else "imdsv2"
    parts.observer.served(CredentialsServed.of(ask, role, served.key_suffix, channel, token))
    return Reply(200, served.imds_extended if extended else served.imds)


def token_refusal(parts: Parts, ask: Ask, view: View) -> Reply | None:
    """IMDSv2: every GET needs a valid session token (HttpTokens=required), unless IMDSv1
    is enabled, in which case only a *missing* token is let through. None: go on."""
    token = ask.headers.get(TOKEN_HEADER)
    if token is None:
        if view.config.imdsv1:
            return None
        return refuse(ask, 401, "Unauthorized (IMDSv2 token required)", refused="token_missing")
    if not parts.tokens.verify(token):
        return refuse(ask, 401, "Unauthorized (invalid or expired token)", refused="token_invalid")
    return None


def dispatch(parts: Parts, ask: Ask, view: View) -> Answer:
    """Route every IMDS request on its normalized path."""
    path = normalize(ask.path)
    method = ask.method
    if path == TOKEN_PATH:
        if method == "PUT":
            return put_token(parts, ask, view)
        return refuse(ask, 405, "Method Not Allowed", headers=(("Allow", "PUT"),))
    if method == "PUT" and _VERSIONED_TOKEN.fullmatch(path):
        # EC2 answers a token PUT on a versioned path with 403, by design.
        return refuse(ask, 403, "Forbidden (tokens come from /latest/api/token)")
    if method not in ("GET", "HEAD"):
        return refuse(ask, 405, "Method Not Allowed", headers=(("Allow", "GET, HEAD"),))
    if (refusal := token_refusal(parts, ask, view)) is not None:
        return refusal
    reply = view.static.get(path)
    if reply is not None:
        return reply
    parent, _, leaf = path.rpartition("/")
    if parent in (CREDS, CREDS_EXT) and leaf == view.role:
        return get_credentials(parts, ask, view, extended=parent == CREDS_EXT)
    return refuse(ask, 404, "Not Found")
