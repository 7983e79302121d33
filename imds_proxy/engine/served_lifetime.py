"""Served lifetime: cap the Expiration we serve, so credential rotation can be watched in seconds."""

from __future__ import annotations

import logging
from collections.abc import Hashable
from dataclasses import replace
from datetime import UTC, datetime, timedelta

from imds_proxy.engine.credentials import Clock, Credentials, Source, WrappedSource, wire_time
from imds_proxy.engine.policy import RefreshPolicy, refresh_at
from imds_proxy.errors import ConfigError

log = logging.getLogger("imds_proxy.rotation")
#: Shortest served lifetime: a new STS session every second (lifetime/4) is as fast as is useful.
MIN_SECONDS = 4
_EPOCH = datetime(2000, 1, 1, tzinfo=UTC)


class ServedLifetime(WrappedSource):
    """A Source whose credentials say they expire at most `lifetime` after they were fetched.

    STS's shortest session is 15 minutes, too slow to watch an SDK meet an expiry. Capping what we
    *serve* (the keys stay valid at STS until their own, later, expiry) lets the engine's own
    refresh-ahead math rotate on the short cadence: see `rotation_period`.
    """

    def __init__(self, source: Source, lifetime: timedelta, clock: Clock) -> None:
        super().__init__(source)
        self.lifetime = lifetime
        self._clock = clock

    @property
    def cache_key(self) -> Hashable:
        return (self.source.cache_key, self.lifetime)

    async def fetch(self, upstream: Credentials | None = None) -> Credentials:
        creds = await super().fetch(upstream)
        now = self._clock()
        served = min(creds.expiration, now + self.lifetime)
        log.info(
            "rotation role=%s key=%s served_expires=%s sts_expires=%s",
            self.role_arn,
            creds.key_suffix,
            wire_time(served),
            wire_time(creds.expiration),
        )
        return replace(creds, expiration=served, last_updated=now)


def checked(seconds: int, duration: int) -> timedelta:
    """`--served-lifetime`, validated: at least MIN_SECONDS, at most the session duration (a cap
    beyond the STS expiry would change nothing)."""
    if not MIN_SECONDS <= seconds <= duration:
        raise ConfigError(
            "served_lifetime",
            f"{seconds} is out of range",
            f"give seconds from {MIN_SECONDS} to {duration} (the session duration)",
        )
    return timedelta(seconds=seconds)


def policy_for(policy: RefreshPolicy, lifetime: timedelta) -> RefreshPolicy:
    """The refresh policy to use with a served lifetime. The expiry margin (for clock skew with AWS)
    must stay well under the serve floor, lifetime/2, or the cache would drop credentials before
    their rotation is due; a local AWS shares our clock, so a tenth of the lifetime is plenty."""
    return replace(policy, expiry_margin=min(policy.expiry_margin, lifetime / 10))


def rotation_period(lifetime: timedelta, policy: RefreshPolicy) -> timedelta:
    """How long after a fetch the engine fetches again, for credentials living `lifetime`
    (lifetime/4 for lifetimes up to 20 minutes with the default policy)."""
    sample = Credentials("AKIDSAMPLE", "-", "-", lifetime + _EPOCH, _EPOCH, "arn:aws:iam::0:role/r", "0")
    return refresh_at(sample, policy) - _EPOCH
