"""`imds-proxy healthcheck`: ask a running daemon, the way an SDK does (IMDSv2), for its
role's credentials, and say whether they are valid. Standard library only: slim container
images have no curl."""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from datetime import datetime, timedelta
from typing import Any

from imds_proxy.config import container
from imds_proxy.config.listeners import Listener
from imds_proxy.engine.credentials import Clock, key_suffix
from imds_proxy.engine.tokens import TOKEN_HEADER, TTL_HEADER
from imds_proxy.errors import ImdsProxyError

#: Docker's HEALTHCHECK default timeout is 30 s; SDKs give IMDS 1 s per request.
DEFAULT_TIMEOUT = 3.0
CREDS = "latest/meta-data/iam/security-credentials/"

# Never through a proxy (HTTP_PROXY in a container's environment): we ask loopback.
_opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))


class Unhealthy(ImdsProxyError):
    """The daemon did not answer, or had no valid credentials."""


def _call(request: urllib.request.Request, timeout: float) -> str:
    try:
        with _opener.open(request, timeout=timeout) as response:
            body: bytes = response.read()
    except urllib.error.HTTPError as e:
        raise Unhealthy(f"{request.get_method()} {request.full_url} answered {e.code}") from None
    except (urllib.error.URLError, OSError) as e:
        reason = getattr(e, "reason", e)
        raise Unhealthy(f"no answer from {request.full_url}: {reason}") from None
    return body.decode("utf-8", "replace")


def check(listener: Listener, clock: Clock, timeout: float = DEFAULT_TIMEOUT) -> str:
    """One line describing the healthy listener; raises Unhealthy. Prints no secret."""
    if listener.port == 0:
        raise Unhealthy(f"{listener} has port 0 (chosen at start): probe a fixed port with --listen")
    return check_url(container.base_url(container.client_host(listener), listener.port) + "/", clock, timeout)


def check_url(base: str, clock: Clock, timeout: float = DEFAULT_TIMEOUT) -> str:
    """check() for an IMDS base URL ending in a slash (doctor probes the one SDKs would use)."""
    put = urllib.request.Request(base + "latest/api/token", method="PUT", headers={TTL_HEADER: "60"})
    headers = {TOKEN_HEADER: _call(put, timeout)}
    role = _call(urllib.request.Request(base + CREDS, headers=headers), timeout)
    body = _call(urllib.request.Request(base + CREDS + role, headers=headers), timeout)
    try:
        doc: dict[str, Any] = json.loads(body)
        code = doc.get("Code")
        if code != "Success":
            raise Unhealthy(f"role {role} on {base}: {code}: {doc.get('Message', '')}")
        expires = datetime.fromisoformat(str(doc["Expiration"]).replace("Z", "+00:00"))
        key = key_suffix(str(doc["AccessKeyId"]))
    except (ValueError, KeyError, AttributeError):
        raise Unhealthy(f"role {role} on {base}: the credentials document is malformed") from None
    left = expires - clock()
    if left <= timedelta(0):
        raise Unhealthy(f"role {role} on {base}: the credentials served have expired")
    return f"healthy: role {role} on {base}, key {key} valid for {int(left.total_seconds() // 60)} min"
