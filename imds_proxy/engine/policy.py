"""The refresh policy as data: when credentials are refreshed, how long requests wait, how the
engine backs off; and the pure functions that turn it into moments."""

from __future__ import annotations

import random
from dataclasses import dataclass
from datetime import datetime, timedelta

from imds_proxy.config import DEFAULT_REFRESH_AHEAD, Config
from imds_proxy.engine.credentials import Credentials


@dataclass(frozen=True)
class RefreshPolicy:
    """When to refresh and how to back off; every number protects a client behaviour."""

    #: Every credential served has at least this long left while STS answers.
    refresh_ahead: timedelta = timedelta(seconds=DEFAULT_REFRESH_AHEAD)
    #: The background refresh starts this much earlier still, so a slow or failed STS
    #: call has time to be retried before served credentials drop under refresh_ahead.
    lead: timedelta = timedelta(minutes=5)
    #: How long a request waits for a refresh when the cached credentials are valid but
    #: under the floor (the first request after a laptop wakes): botocore and the JS SDK
    #: give up on IMDS after 1 s, so past this they get the still-valid ones instead.
    stale_wait: timedelta = timedelta(seconds=0.5)
    #: How long a request waits for STS when nothing valid is held (a cold start, a long
    #: outage): under the 1 s after which botocore and the JS SDK give up on IMDS, so the
    #: SDK reads EC2's error document (and retries) instead of timing out on us.
    cold_wait: timedelta = timedelta(seconds=0.9)
    #: Credentials closer than this to expiry count as expired (clock skew with AWS).
    expiry_margin: timedelta = timedelta(seconds=60)
    #: Exponential backoff with full jitter after STS failures.
    backoff_base: timedelta = timedelta(seconds=1)
    backoff_cap: timedelta = timedelta(minutes=5)
    #: The backoff cap while nothing valid is held: every caller is refused meanwhile, so
    #: STS is asked again at least this often (one call per role, not a storm).
    cold_backoff_cap: timedelta = timedelta(seconds=30)
    #: While nothing valid is held, a request may start a fetch (one, shared) once the
    #: last attempt is this old, whatever the backoff: a recovered STS is used within a
    #: few seconds of an SDK asking, yet a crowd of SDKs makes one call per this interval.
    cold_request_interval: timedelta = timedelta(seconds=2)
    #: The refresh loop re-reads the wall clock at least this often (a laptop's
    #: monotonic clock stops while it sleeps).
    max_sleep: timedelta = timedelta(seconds=60)

    @classmethod
    def of(cls, config: Config) -> RefreshPolicy:
        """The policy a configuration asks for (its refresh_ahead; the rest are defaults)."""
        return cls(refresh_ahead=config.refresh_ahead)


def serve_floor(creds: Credentials, policy: RefreshPolicy) -> timedelta:
    """How much life served credentials must have left while STS answers: refresh_ahead,
    or half the credentials' own lifetime when STS handed out shorter ones (so a short
    session cannot make every request call STS)."""
    lifetime = creds.expiration - creds.last_updated
    return min(policy.refresh_ahead, lifetime / 2)


def refresh_at(creds: Credentials, policy: RefreshPolicy) -> datetime:
    """When the background refresh of these credentials is due: `lead` before they would
    drop under the serve floor, so a failed attempt can be retried in time."""
    lifetime = creds.expiration - creds.last_updated
    floor = serve_floor(creds, policy)
    lead = min(policy.lead, (lifetime - floor) / 2)
    return creds.expiration - floor - lead


def backoff_delay(
    failures: int, policy: RefreshPolicy, rng: random.Random, *, holding: bool = True
) -> timedelta:
    """Exponential backoff with full jitter: uniform(0, min(cap, base * 2^(failures-1))); the
    cap is `cold_backoff_cap` when nothing valid is `holding`."""
    cap = policy.backoff_cap if holding else min(policy.backoff_cap, policy.cold_backoff_cap)
    ceiling = min(cap, policy.backoff_base * (2 ** max(0, min(failures - 1, 30))))
    jittered: timedelta = ceiling * rng.random()
    return jittered


