"""A token bucket per peer address, on an injected monotonic clock, over a bounded set of peers."""

from __future__ import annotations

import time
from collections.abc import Callable

from cachetools import LRUCache

from imds_proxy.kubernetes.settings import RateLimit


class PeerLimiter:
    """`allow(peer)` is False once a peer has used its burst faster than the steady rate."""

    def __init__(self, limit: RateLimit, monotonic: Callable[[], float] = time.monotonic) -> None:
        self._limit = limit
        self._monotonic = monotonic
        #: peer → (tokens left, when counted). A forgotten peer starts with a full bucket.
        self._buckets: LRUCache[str, tuple[float, float]] = LRUCache(maxsize=limit.peers)

    def allow(self, peer: str) -> bool:
        now = self._monotonic()
        tokens, then = self._buckets.get(peer, (float(self._limit.burst), now))
        tokens = min(float(self._limit.burst), tokens + (now - then) * self._limit.per_second)
        if tokens < 1.0:
            self._buckets[peer] = (tokens, now)
            return False
        self._buckets[peer] = (tokens - 1.0, now)
        return True
