"""The served-lifetime cap: what it serves, and the rotation cadence the engine gets from it (fake clock)."""

from __future__ import annotations

import random
from datetime import timedelta

import pytest

from imds_proxy.engine.policy import RefreshPolicy
from imds_proxy.engine.refresh import CredentialEngine
from imds_proxy.engine.served_lifetime import ServedLifetime, policy_for, rotation_period

from conftest import ROLE
from fakes import FakeClock, FakeSource

MINUTE = timedelta(minutes=1)


def capped(
    clock: FakeClock, lifetime: timedelta, sts_lifetime: timedelta = timedelta(hours=1)
) -> ServedLifetime:
    return ServedLifetime(FakeSource(clock, lifetime=sts_lifetime), lifetime, clock)


async def test_served_expiration_is_capped_at_fetch_time_plus_the_lifetime(clock: FakeClock) -> None:
    creds = await capped(clock, MINUTE).fetch()
    assert creds.expiration == clock() + MINUTE
    assert creds.last_updated == clock()


async def test_an_sts_expiry_sooner_than_the_cap_is_kept(clock: FakeClock) -> None:
    creds = await capped(clock, timedelta(hours=2), sts_lifetime=timedelta(minutes=15)).fetch()
    assert creds.expiration == clock() + timedelta(minutes=15)


async def test_each_rotation_is_logged_with_the_key_suffix_only(
    clock: FakeClock, caplog: pytest.LogCaptureFixture
) -> None:
    creds = await capped(clock, MINUTE).fetch()
    lines = [r.getMessage() for r in caplog.records if r.name == "imds_proxy.rotation"]
    assert lines == [
        f"rotation role=arn:aws:iam::123456789012:role/test-role key=…{creds.access_key_id[-4:]} "
        "served_expires=2026-01-01T12:01:00Z sts_expires=2026-01-01T13:00:00Z"
    ]


async def test_the_engine_rotates_a_quarter_lifetime_after_each_fetch(clock: FakeClock) -> None:
    lifetime = MINUTE
    policy = policy_for(RefreshPolicy(), lifetime)
    source = capped(clock, lifetime)
    engine = CredentialEngine({ROLE: source}, policy, clock, rng=random.Random(1))
    keys = [(await engine.get(ROLE)).access_key_id]
    for _ in range(120):  # two minutes, second by second, the timer doing its work
        clock.advance(seconds=1)
        await engine.tick()
        await engine.settle()
        creds = await engine.get(ROLE)
        assert lifetime * 3 / 4 <= creds.remaining(clock()) <= lifetime  # never near the served expiry
        if creds.access_key_id != keys[-1]:
            keys.append(creds.access_key_id)
    assert len(keys) == 1 + 120 // 15  # a new set every 15 s
    assert rotation_period(lifetime, policy) == timedelta(seconds=15)


def test_rotation_follows_the_engines_refresh_ahead_math() -> None:
    policy = RefreshPolicy()  # refresh_ahead 30 min, lead 5 min
    assert rotation_period(timedelta(minutes=20), policy) == timedelta(minutes=5)  # a quarter
    assert rotation_period(timedelta(minutes=50), policy) == timedelta(minutes=20)  # half, less the lead
    assert rotation_period(timedelta(hours=3), policy) == timedelta(hours=2, minutes=25)  # 30 + 5 min left


def test_the_expiry_margin_shrinks_only_for_lifetimes_under_ten_minutes() -> None:
    policy = RefreshPolicy()
    assert policy_for(policy, timedelta(seconds=8)).expiry_margin == timedelta(seconds=0.8)
    assert policy_for(policy, timedelta(minutes=30)).expiry_margin == policy.expiry_margin
