"""The request gate: the checks every request passes on every channel before a handler sees it,
and the shared refusal and path forms."""

from __future__ import annotations

import functools
import ipaddress
import logging
from urllib.parse import urlsplit

from imds_proxy.server.wire import Ask, Reply

log = logging.getLogger("imds_proxy.gates")

#: Headers a relaying proxy adds; EC2 refuses X-Forwarded-For.
_RELAY_HEADERS = ("X-Forwarded-For", "Forwarded", "Via")


@functools.lru_cache(maxsize=256)  # pure, and every request asks (bounded: paths are the client's)
def normalize(path: str) -> str:
    """One form per path: `//` collapsed and no trailing slash, so every path answers with
    and without one (clients ask for both). We route on this form ourselves because
    aiohttp's normalize_path_middleware answers with redirects, which SDKs do not follow."""
    return "/" + "/".join(part for part in path.split("/") if part)


def refuse(
    ask: Ask,
    status: int,
    reason: str,
    *,
    refused: str | None = None,
    headers: tuple[tuple[str, str], ...] = (),
) -> Reply:
    """A short plain-text refusal, logged with the client address. `refused` names why a
    client was turned away (the clients_refused metric), for refusals that are that."""
    log.info("refused status=%d client=%s %s %s: %s", status, ask.remote, ask.method, ask.path, reason)
    return Reply.text(status, f"{status} - {reason}", headers=headers, refused=refused)


@functools.lru_cache(maxsize=256)  # pure; SDKs send one Host per listener, parsed once
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


def request_refusal(ask: Ask) -> Reply | None:
    """The refusal for a request that no SDK sends but attacks do; None: go on."""
    headers = ask.headers
    # Browser-driven attacks (a page fetching from the metadata port) carry these headers;
    # SDKs never do.
    if "Origin" in headers or "Sec-Fetch-Mode" in headers or "Sec-Fetch-Site" in headers:
        return refuse(ask, 403, "Forbidden (browser requests are not served)", refused="browser")
    # DNS rebinding: a hostile name re-pointed at 127.0.0.1 arrives with its own Host
    # header. SDKs use the IP literal or localhost (aws-vault's ec2server.go does the same).
    if not _host_is_literal(headers.get("Host")):
        return refuse(ask, 403, "Forbidden (Host must be an IP address or localhost)", refused="host")
    # EC2 refuses X-Forwarded-For: a request relayed by a proxy or an SSRF-able web app
    # must not obtain a token or credentials (EC2 user guide; kube2iam #241, #279: 403).
    # Forwarded (RFC 7239) and Via are the same signature from other proxies and gateways.
    if "X-Forwarded-For" in headers or "Forwarded" in headers or "Via" in headers:
        relayed = next(h for h in _RELAY_HEADERS if h in headers)
        return refuse(ask, 403, f"Forbidden ({relayed} is not accepted)", refused="forwarded")
    # An absolute-URI request line is what a client sends to a forward proxy: a proxy that
    # passes it on (an SSRF relay) may name a host the Host check never saw.
    target = ask.target  # the request line's target, as sent
    if not target.startswith("/") and (authority := urlsplit(target).netloc) and (
        not _host_is_literal(authority) or authority != headers.get("Host")
    ):
        return refuse(ask, 403, "Forbidden (the request line names another host)")
    # aiohttp's expect handling is deferred to here (server/expect.py): after the checks above.
    expect = headers.get("Expect")
    if expect is not None and expect.lower() != "100-continue":
        return refuse(ask, 417, "Expectation Failed (only 100-continue is understood)")
    return None
