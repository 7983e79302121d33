"""Who a token says its bearer is, by TokenReview: checked for our audience, a ServiceAccount
user and a pod on this node; answers cached by the token's hash until the token expires."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import json
import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol

from cachetools import TLRUCache

from imds_proxy.kubernetes.pods import Pod, PodSet

log = logging.getLogger("imds_proxy.kubernetes.review")

#: A review is trusted at most this long even when the token lives longer: a ServiceAccount
#: deleted or a token revoked stops working within minutes, not hours.
REVIEW_CACHE_MAX = 300.0
_SA_PREFIX = "system:serviceaccount:"
_NODE_NAME = "authentication.kubernetes.io/node-name"
_POD_NAME = "authentication.kubernetes.io/pod-name"
_POD_UID = "authentication.kubernetes.io/pod-uid"


class Refused(Exception):
    """The token does not prove a pod on this node; the message is safe to send and log."""


class ReviewApi(Protocol):
    async def review(self, token: str, audiences: list[str]) -> dict[str, Any]: ...

    async def get_pod(self, namespace: str, name: str) -> dict[str, Any] | None: ...


@dataclass(frozen=True)
class Identity:
    """A pod on this node, as its token proves it."""

    namespace: str
    service_account: str
    pod_name: str
    pod_uid: str


def token_hash(token: str) -> str:
    """What logs and caches may hold of a token: its sha256 (logs: the first 12 hex digits)."""
    return hashlib.sha256(token.encode("utf-8", "replace")).hexdigest()


def token_expiry(token: str) -> float | None:
    """The `exp` claim of a JWT, read without verifying (the API server verified it): only an
    upper bound for how long its review is kept."""
    try:
        payload = token.split(".")[1]
        claims = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
        exp = claims.get("exp")
    except (IndexError, ValueError, AttributeError):
        return None
    return float(exp) if isinstance(exp, int | float) and not isinstance(exp, bool) else None


def _one(extra: dict[str, Any], key: str) -> str | None:
    values = extra.get(key) or []
    return values[0] if isinstance(values, list) and len(values) == 1 and isinstance(values[0], str) else None


class TokenReviewer:
    """Reviews tokens for one node and audience; one API call per distinct token at a time."""

    def __init__(
        self, api: ReviewApi, pods: PodSet, audience: str, clock: Callable[[], datetime], maxsize: int = 4096
    ) -> None:
        self._api = api
        self._pods = pods
        self._audience = audience
        self._clock = clock
        self._cache: TLRUCache[str, Identity] = TLRUCache(
            maxsize=maxsize, ttu=self._until, timer=lambda: self._clock().timestamp()
        )
        self._expiry: dict[str, float] = {}
        self._flights: dict[str, asyncio.Task[Identity]] = {}
        self.reviews = 0  # calls to the API server (metrics, tests)

    def _until(self, key: str, identity: Identity, now: float) -> float:
        return min(self._expiry.pop(key, now + REVIEW_CACHE_MAX), now + REVIEW_CACHE_MAX)

    async def identify(self, token: str) -> Identity:
        """The pod this token proves, or Refused with the reason. The pod must still be on this
        node (the watch): a cached review of a deleted pod's token is refused at once."""
        key = token_hash(token)
        identity = self._cache.get(key)
        if identity is None:
            flight = self._flights.get(key)
            if flight is None:
                flight = asyncio.ensure_future(self._review(token))
                self._flights[key] = flight
                flight.add_done_callback(lambda _t: self._flights.pop(key, None))
            identity = await asyncio.shield(flight)
            exp = token_expiry(token)
            if exp is None or exp > self._clock().timestamp():
                self._expiry[key] = exp if exp is not None else float("inf")
                self._cache[key] = identity
        if self._pods.by_uid(identity.pod_uid) is None:
            raise Refused(
                f"pod {identity.namespace}/{identity.pod_name} is not running on node {self._pods.node}"
            )
        return identity

    async def _review(self, token: str) -> Identity:
        self.reviews += 1
        status = await self._api.review(token, [self._audience])
        short = token_hash(token)[:12]
        if not status.get("authenticated"):
            # The API server's reason (expired, wrong audience, pod gone) is logged, not echoed.
            log.info("token sha256:%s not authenticated: %s", short, str(status.get("error") or "")[:200])
            raise Refused("the token is not valid (expired, revoked, or not for imds-proxy)")
        if self._audience not in (status.get("audiences") or []):
            raise Refused(f"the token is not for audience {self._audience}")
        user = status.get("user") or {}
        username = str(user.get("username") or "")
        parts = username.removeprefix(_SA_PREFIX).split(":")
        if not username.startswith(_SA_PREFIX) or len(parts) != 2 or not all(parts):
            raise Refused("the token is not a ServiceAccount's")
        namespace, service_account = parts
        extra = user.get("extra") or {}
        pod_name, pod_uid = _one(extra, _POD_NAME), _one(extra, _POD_UID)
        if pod_name is None or pod_uid is None:
            raise Refused("the token is not bound to a pod (use a projected ServiceAccount token)")
        node = _one(extra, _NODE_NAME)
        if node is None:
            # Older API servers leave the node out of `extra`: look the pod up and match its UID.
            node = await self._node_of(namespace, pod_name, pod_uid)
        if node != self._pods.node:
            log.info("token sha256:%s is bound to a pod on node %s, not %s", short, node, self._pods.node)
            raise Refused(f"the token belongs to a pod on another node, not {self._pods.node}")
        return Identity(namespace, service_account, pod_name, pod_uid)

    async def _node_of(self, namespace: str, name: str, uid: str) -> str | None:
        raw = await self._api.get_pod(namespace, name)
        pod = Pod.of(raw) if raw is not None else None
        if pod is None or pod.uid != uid:
            raise Refused(f"pod {namespace}/{name} of the token no longer exists")
        return pod.node_name
