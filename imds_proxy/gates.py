"""Request middlewares: the checks every request passes before a handler sees it."""

from __future__ import annotations

import ipaddress
import logging

from aiohttp import web
from aiohttp.typedefs import Handler

from imds_proxy import appkeys
from imds_proxy.tokens import TOKEN_HEADER, TOKEN_PATH

log = logging.getLogger("imds_proxy.gates")

#: Headers only browsers send. A page in a browser must never read credentials.
_BROWSER_HEADERS = ("Origin", "Sec-Fetch-Mode", "Sec-Fetch-Site")
#: Route handlers that check authorization themselves, instead of an IMDSv2 session token.
_OWN_AUTHORIZATION: set[Handler] = set()


def own_authorization(handler: Handler) -> Handler:
    """Mark a route handler as doing its own authorization check (the container route:
    its clients send an Authorization header, never an IMDSv2 session token)."""
    _OWN_AUTHORIZATION.add(handler)
    return handler


def normalize(path: str) -> str:
    """One form per path: `//` collapsed and no trailing slash, so every path answers with
    and without one (clients ask for both). We route on this form ourselves because
    aiohttp's normalize_path_middleware answers with redirects, which SDKs do not follow."""
    return "/" + "/".join(part for part in path.split("/") if part)


def refuse(request: web.Request, status: int, reason: str) -> web.Response:
    """A short plain-text refusal, logged with the client address."""
    log.info(
        "refused status=%d client=%s %s %s: %s",
        status,
        request.remote,
        request.method,
        request.rel_url.path,
        reason,
    )
    return web.Response(status=status, text=f"{status} - {reason}")


def _host_is_literal(host_header: str | None) -> bool:
    if not host_header:
        return True  # HTTP/1.0 clients send none; nothing to rebind
    host = host_header.rsplit(":", 1)[0] if not host_header.endswith("]") else host_header
    host = host.strip("[]")
    if host == "localhost":
        return True
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return False
    return True


@web.middleware
async def request_gate(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Refuse requests that no SDK sends but attacks do."""
    # Browser-driven attacks (a page fetching from the metadata port) carry these headers;
    # SDKs never do.
    if any(h in request.headers for h in _BROWSER_HEADERS):
        return refuse(request, 403, "Forbidden (browser requests are not served)")
    # DNS rebinding: a hostile name re-pointed at 127.0.0.1 arrives with its own Host
    # header. SDKs use the IP literal or localhost (aws-vault's ec2server.go does the same).
    if not _host_is_literal(request.headers.get("Host")):
        return refuse(request, 403, "Forbidden (Host must be an IP address or localhost)")
    # EC2 refuses X-Forwarded-For: a request relayed by a proxy or an SSRF-able web app
    # must not obtain a token or credentials (EC2 user guide; kube2iam #241, #279: 403).
    if "X-Forwarded-For" in request.headers:
        return refuse(request, 403, "Forbidden (X-Forwarded-For is not accepted)")
    return await handler(request)


@web.middleware
async def token_gate(request: web.Request, handler: Handler) -> web.StreamResponse:
    """IMDSv2: every GET needs a valid session token (HttpTokens=required), unless IMDSv1
    is enabled, in which case only a *missing* token is let through."""
    if request.method not in ("GET", "HEAD") or normalize(request.rel_url.path) == TOKEN_PATH:
        return await handler(request)  # the handler answers 405 to these
    if request.match_info.handler in _OWN_AUTHORIZATION:
        return await handler(request)
    token = request.headers.get(TOKEN_HEADER)
    if token is None:
        if request.app[appkeys.CONFIG].imdsv1:
            return await handler(request)
        return refuse(request, 401, "Unauthorized (IMDSv2 token required)")
    if not request.app[appkeys.TOKENS].verify(token):
        return refuse(request, 401, "Unauthorized (invalid or expired token)")
    return await handler(request)
