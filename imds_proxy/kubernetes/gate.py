"""The identity gate and the credentials handler: a request gets a pod's role only when it is
addressed to us, comes from this node, stays under its rate, and carries that pod's token."""

from __future__ import annotations

import ipaddress
import logging
from collections.abc import Callable
from dataclasses import dataclass

from aiohttp import web

from imds_proxy.errors import CredentialsUnavailable
from imds_proxy.kubernetes.api import ApiError
from imds_proxy.kubernetes.pods import Pod, PodSet
from imds_proxy.kubernetes.ratelimit import PeerLimiter
from imds_proxy.kubernetes.review import Refused, TokenReviewer, token_hash
from imds_proxy.kubernetes.sessions import Sessions
from imds_proxy.kubernetes.settings import PATH
from imds_proxy.server.container import error_body

log = logging.getLogger("imds_proxy.kubernetes.gate")


@dataclass
class Agent:
    """Everything a request is checked against, shared by every listener of the agent."""

    pods: PodSet
    reviewer: TokenReviewer
    sessions: Sessions
    limiter: PeerLimiter
    #: Our own addresses (the listeners'): the only Host values served.
    hosts: frozenset[str]
    #: The node's own addresses: processes on the node (host network) may ask.
    node_ips: frozenset[str]
    #: Read the policy file again now (SIGHUP; tests); False when it cannot be used.
    reload_policy: Callable[[], bool]


AGENT: web.AppKey[Agent] = web.AppKey("agent", Agent)


def _ip(value: str | None) -> str | None:
    """One spelling per address (IPv4-mapped IPv6 as IPv4), None for what is not one."""
    try:
        address = ipaddress.ip_address((value or "").strip("[]"))
    except ValueError:
        return None
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return str(address.ipv4_mapped)
    return str(address)


def host_of(header: str | None) -> str | None:
    """The address in a Host header (`1.2.3.4`, `1.2.3.4:80`, `[::1]:80`), None if it is a name."""
    if not header:
        return None
    if header.startswith("["):
        return _ip(header[1 : header.find("]")] if "]" in header else None)
    return _ip(header.rsplit(":", 1)[0] if header.count(":") == 1 else header)


def _refuse(
    request: web.Request, status: int, code: str, message: str, token: str | None = None
) -> web.Response:
    """A refusal in the container protocol's shape, logged with the peer and at most the token's
    hash prefix, never the token."""
    log.info(
        "refused status=%d peer=%s%s: %s",
        status,
        request.remote,
        f" token=sha256:{token_hash(token)[:12]}" if token else "",
        message,
    )
    return web.Response(status=status, body=error_body(code, message), content_type="application/json")


def _peer_pod(agent: Agent, peer: str | None) -> tuple[bool, Pod | None]:
    """Whether the peer is on this node, and the pod that owns its address if one does."""
    if peer is None:
        return False, None
    pod = agent.pods.by_ip(peer)
    if pod is not None:
        return True, pod
    on_node = peer in agent.node_ips or peer in agent.hosts or ipaddress.ip_address(peer).is_loopback
    return on_node, None


async def get_credentials(request: web.Request) -> web.StreamResponse:
    """GET /v1/credentials with `Authorization: <the pod's projected token>`."""
    agent = request.app[AGENT]
    # DNS rebinding and relays: a request that names any other host was not sent to us by an SDK.
    if host_of(request.headers.get("Host")) not in agent.hosts:
        return _refuse(request, 403, "AccessDenied", "the Host header must be this agent's address")
    # Before the first complete pod list we know no pod: answering anything would be a guess
    # (kube2iam #170 handed out the node's role during this window).
    if not agent.pods.synced.is_set():
        return _refuse(request, 503, "ServiceUnavailable", "the pod list is not synced yet; retry")
    peer = _ip(request.remote)
    on_node, peer_pod = _peer_pod(agent, peer)
    # Only this node's pods (and the node) may ask: another node's traffic has no business here.
    if not on_node or peer is None:
        return _refuse(request, 403, "AccessDenied", "the peer is not a pod on this node")
    # Every new token costs a TokenReview: a looping client must not flood the API server.
    if not agent.limiter.allow(peer):
        return _refuse(request, 429, "TooManyRequests", "too many requests from this address; slow down")
    token = request.headers.get("Authorization")
    if not token:
        return _refuse(request, 401, "Unauthorized", "send the pod's ServiceAccount token in Authorization")
    try:
        identity = await agent.reviewer.identify(token)
    except Refused as e:
        return _refuse(request, 403, "AccessDenied", str(e), token)
    except ApiError as e:
        log.warning("cannot review a token now: %s", e)
        return _refuse(request, 503, "ServiceUnavailable", "cannot verify the token now; retry", token)
    pod = agent.pods.by_uid(identity.pod_uid)
    assert pod is not None  # identify() checked it
    # A token replayed from a neighbouring pod: its address names another pod.
    if peer_pod is not None and peer_pod.uid != pod.uid:
        return _refuse(request, 403, "AccessDenied", "the token belongs to another pod", token)
    try:
        served = await agent.sessions.served(pod)
    except CredentialsUnavailable as e:
        log.warning("no credentials for pod %s: %s", pod.ref, e)
        return _refuse(request, 503, e.code, str(e), token)
    if served is None:
        why = f"no role for {identity.namespace}/{identity.service_account}"
        return _refuse(request, 403, "AccessDenied", why, token)
    log.info(
        "credentials served pod=%s sa=%s role=%s key=%s",
        pod.ref,
        pod.service_account,
        served.credentials.role_arn,
        served.credentials.key_suffix,
    )
    return web.Response(body=served.container, content_type="application/json")


async def not_found(request: web.Request) -> web.StreamResponse:
    return _refuse(request, 404, "NotFound", f"no such path: the credentials are at {PATH}")


def create_agent_app(agent: Agent) -> web.Application:
    app = web.Application()
    app[AGENT] = agent
    app.router.add_get(PATH, get_credentials)
    app.router.add_get(PATH + "/", get_credentials)
    app.router.add_route("*", "/{tail:.*}", not_found)
    return app
