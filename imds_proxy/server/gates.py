"""The request gate: the checks every request passes on every channel before a handler sees it,
and the shared refusal and path forms."""

from __future__ import annotations

import ipaddress
import logging

from aiohttp import web
from aiohttp.typedefs import Handler

from imds_proxy.server.observe import Refusal

log = logging.getLogger("imds_proxy.gates")

#: Headers only browsers send. A page in a browser must never read credentials.
_BROWSER_HEADERS = ("Origin", "Sec-Fetch-Mode", "Sec-Fetch-Site")


def normalize(path: str) -> str:
    """One form per path: `//` collapsed and no trailing slash, so every path answers with
    and without one (clients ask for both). We route on this form ourselves because
    aiohttp's normalize_path_middleware answers with redirects, which SDKs do not follow."""
    return "/" + "/".join(part for part in path.split("/") if part)


def refuse(request: web.Request, status: int, reason: str, *, refused: str | None = None) -> web.Response:
    """A short plain-text refusal, logged with the client address. `refused` names why a
    client was turned away (the clients_refused metric), for refusals that are that."""
    log.info(
        "refused status=%d client=%s %s %s: %s",
        status,
        request.remote,
        request.method,
        request.rel_url.path,
        reason,
    )
    return Refusal(status=status, text=f"{status} - {reason}", refused=refused)


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
        return refuse(request, 403, "Forbidden (browser requests are not served)", refused="browser")
    # DNS rebinding: a hostile name re-pointed at 127.0.0.1 arrives with its own Host
    # header. SDKs use the IP literal or localhost (aws-vault's ec2server.go does the same).
    if not _host_is_literal(request.headers.get("Host")):
        return refuse(request, 403, "Forbidden (Host must be an IP address or localhost)", refused="host")
    # EC2 refuses X-Forwarded-For: a request relayed by a proxy or an SSRF-able web app
    # must not obtain a token or credentials (EC2 user guide; kube2iam #241, #279: 403).
    if "X-Forwarded-For" in request.headers:
        return refuse(request, 403, "Forbidden (X-Forwarded-For is not accepted)", refused="forwarded")
    return await handler(request)
