"""The credential engine, driven by a fake clock and a fake source: no sleeps, no network."""

from __future__ import annotations

import asyncio
import random
from datetime import timedelta

import pytest

from imds_proxy.engine.policy import RefreshPolicy, backoff_delay, refresh_at, serve_floor
from imds_proxy.engine.refresh import CredentialEngine
from imds_proxy.errors import AssumeRoleDenied, CredentialsUnavailable, SourceError

from conftest import ROLE
from fakes import FakeClock, FakeSource

POLICY = RefreshPolicy()  # refresh_ahead 30 min, lead 5 min, margin 60 s


def make_engine(source: FakeSource, clock: FakeClock, policy: RefreshPolicy = POLICY) -> CredentialEngine:
    return CredentialEngine({ROLE: source}, policy, clock, rng=random.Random(1))


async def throttled_background_refresh(source: FakeSource, clock: FakeClock) -> CredentialEngine:
    """An engine holding credentials whose background refresh (due at 25 min) was throttled."""
    engine = make_engine(source, clock)
    await engine.get(ROLE)
    source.fail_with = SourceError("Throttling")
    clock.advance(minutes=26)
    await engine.tick()
    await engine.settle()
    return engine


async def test_refresh_is_due_lead_before_the_serve_floor(source: FakeSource, clock: FakeClock) -> None:
    creds = await source.fetch()
    assert serve_floor(creds, POLICY) == timedelta(minutes=30)
    assert refresh_at(creds, POLICY) == clock() + timedelta(minutes=25)


async def test_short_sessions_get_a_floor_of_half_their_life(clock: FakeClock) -> None:
    creds = await FakeSource(clock, lifetime=timedelta(minutes=15)).fetch()
    assert serve_floor(creds, POLICY) == timedelta(minutes=7, seconds=30)
    # lead shrinks to half of what is left above the floor
    assert refresh_at(creds, POLICY) == clock() + timedelta(minutes=3, seconds=45)


async def test_cached_credentials_are_served_without_a_fetch(source: FakeSource, clock: FakeClock) -> None:
    engine = make_engine(source, clock)
    first = await engine.get(ROLE)
    clock.advance(minutes=10)
    assert await engine.get(ROLE) is first
    assert source.calls == 1


async def test_every_served_credential_keeps_refresh_ahead_while_sts_answers(
    source: FakeSource, clock: FakeClock
) -> None:
    engine = make_engine(source, clock)
    await engine.get(ROLE)
    for _ in range(6 * 60):  # six hours, minute by minute, the timer doing its work
        clock.advance(minutes=1)
        await engine.tick()
        await engine.settle()
        creds = await engine.get(ROLE)
        assert creds.remaining(clock()) >= POLICY.refresh_ahead
    assert 6 * 60 // 25 <= source.calls <= 6 * 60 // 25 + 2  # one fetch per 25 minutes


async def test_timer_starts_the_refresh_at_the_due_time(source: FakeSource, clock: FakeClock) -> None:
    engine = make_engine(source, clock)
    first = await engine.get(ROLE)
    delay = await engine.tick()
    assert delay == POLICY.max_sleep.total_seconds()  # re-reads the wall clock every minute
    clock.advance(minutes=24, seconds=59)
    await engine.tick()
    assert source.calls == 1
    clock.advance(seconds=1)
    await engine.tick()
    await engine.settle()
    assert source.calls == 2
    assert (await engine.get(ROLE)).access_key_id != first.access_key_id


async def test_tick_sleeps_only_until_the_next_due_time(source: FakeSource, clock: FakeClock) -> None:
    engine = make_engine(source, clock)
    await engine.get(ROLE)
    clock.advance(minutes=24, seconds=30)
    assert await engine.tick() == 30.0


async def test_after_a_laptop_sleep_the_first_request_waits_for_fresh_credentials(
    source: FakeSource, clock: FakeClock
) -> None:
    engine = make_engine(source, clock)
    old = await engine.get(ROLE)
    clock.advance(hours=3)  # lid closed: no timer ran, the credentials expired meanwhile
    new = await engine.get(ROLE)
    assert new.access_key_id != old.access_key_id
    assert new.remaining(clock()) == timedelta(hours=1)


async def test_stale_but_valid_credentials_are_replaced_before_serving(
    source: FakeSource, clock: FakeClock
) -> None:
    engine = make_engine(source, clock)
    old = await engine.get(ROLE)
    clock.advance(minutes=40)  # 20 min left: under refresh_ahead, the timer did not run
    new = await engine.get(ROLE)
    assert new.access_key_id != old.access_key_id
    assert source.calls == 2


async def test_sts_failure_keeps_serving_valid_credentials(source: FakeSource, clock: FakeClock) -> None:
    engine = make_engine(source, clock)
    current = await engine.get(ROLE)
    source.fail_with = SourceError("Throttling")
    clock.advance(minutes=40)
    assert await engine.get(ROLE) is current
    assert engine.status(ROLE).failures == 1


async def test_expired_credentials_are_never_served(source: FakeSource, clock: FakeClock) -> None:
    engine = make_engine(source, clock)
    await engine.get(ROLE)
    source.fail_with = SourceError("cannot reach STS")
    clock.advance(minutes=59, seconds=1)  # inside the 60 s expiry margin
    with pytest.raises(CredentialsUnavailable) as raised:
        await engine.get(ROLE)
    assert raised.value.cause is source.fail_with


async def test_cold_failure_reports_the_cause(source: FakeSource, clock: FakeClock) -> None:
    source.fail_with = AssumeRoleDenied("trust policy does not trust the caller")
    engine = make_engine(source, clock)
    with pytest.raises(CredentialsUnavailable, match="trust policy") as raised:
        await engine.get(ROLE)
    assert raised.value.code == "AssumeRoleUnauthorizedAccess"


async def test_no_fetch_during_backoff(source: FakeSource, clock: FakeClock) -> None:
    source.fail_with = SourceError("Throttling")
    engine = make_engine(source, clock)
    with pytest.raises(CredentialsUnavailable):
        await engine.get(ROLE)
    retry_at = engine.status(ROLE).retry_at
    assert retry_at is not None and retry_at > clock()
    for _ in range(50):
        with pytest.raises(CredentialsUnavailable):
            await engine.get(ROLE)
    assert source.calls == 1


async def test_backoff_grows_exponentially_to_the_cap() -> None:
    class Max(random.Random):
        def random(self) -> float:
            return 1.0

    ceilings = [backoff_delay(n, POLICY, Max()).total_seconds() for n in range(1, 12)]
    assert ceilings == [1, 2, 4, 8, 16, 32, 64, 128, 256, 300, 300]


async def test_backoff_is_fully_jittered() -> None:
    rng = random.Random(3)
    delays = {backoff_delay(6, POLICY, rng).total_seconds() for _ in range(100)}
    assert min(delays) < 8 and max(delays) > 24 and max(delays) <= 32


async def test_recovery_after_failures(source: FakeSource, clock: FakeClock) -> None:
    engine = make_engine(source, clock)
    await engine.get(ROLE)
    source.fail_with = SourceError("Throttling")
    clock.advance(minutes=25)
    for _ in range(4):  # the timer retries after each backoff
        await engine.tick()
        await engine.settle()
        clock.advance(minutes=1)
    failures = engine.status(ROLE).failures
    assert failures >= 2
    source.fail_with = None
    clock.advance(minutes=5)  # past any backoff so far
    await engine.tick()
    await engine.settle()
    status = engine.status(ROLE)
    assert status.failures == 0 and status.last_error is None
    assert (await engine.get(ROLE)).remaining(clock()) == timedelta(hours=1)


async def test_concurrent_cold_requests_share_one_fetch(source: FakeSource, clock: FakeClock) -> None:
    source.gate = asyncio.Event()
    engine = make_engine(source, clock)
    waiters = [asyncio.create_task(engine.get(ROLE)) for _ in range(200)]
    await asyncio.sleep(0)
    source.gate.set()
    results = await asyncio.gather(*waiters)
    assert source.calls == 1
    assert len({c.access_key_id for c in results}) == 1


async def test_concurrent_cold_failure_is_one_fetch_for_all(source: FakeSource, clock: FakeClock) -> None:
    source.gate = asyncio.Event()
    source.fail_with = SourceError("Throttling")
    engine = make_engine(source, clock)
    waiters = [asyncio.create_task(engine.get(ROLE)) for _ in range(50)]
    await asyncio.sleep(0)
    source.gate.set()
    results = await asyncio.gather(*waiters, return_exceptions=True)
    assert source.calls == 1
    assert all(isinstance(r, CredentialsUnavailable) for r in results)


async def test_concurrent_requests_during_refresh_share_one_fetch(
    source: FakeSource, clock: FakeClock
) -> None:
    engine = make_engine(source, clock)
    await engine.get(ROLE)
    clock.advance(minutes=45)
    source.gate = asyncio.Event()
    waiters = [asyncio.create_task(engine.get(ROLE)) for _ in range(100)]
    await asyncio.sleep(0)
    source.gate.set()
    await asyncio.gather(*waiters)
    assert source.calls == 2


async def test_short_lived_credentials_do_not_make_every_request_fetch(clock: FakeClock) -> None:
    source = FakeSource(clock, lifetime=timedelta(minutes=20))  # shorter than refresh_ahead
    engine = make_engine(source, clock)
    await engine.get(ROLE)
    for _ in range(100):
        await engine.get(ROLE)
    assert source.calls == 1


async def test_a_crashing_source_is_contained(source: FakeSource, clock: FakeClock) -> None:
    class Broken(FakeSource):
        async def fetch(self):  # type: ignore[no-untyped-def]
            raise KeyError("Credentials")

    engine = make_engine(Broken(clock), clock)
    with pytest.raises(CredentialsUnavailable, match="unexpected KeyError"):
        await engine.get(ROLE)


async def test_a_failed_background_refresh_leaves_no_unretrieved_exception(
    source: FakeSource, clock: FakeClock, caplog: pytest.LogCaptureFixture
) -> None:
    _engine = await throttled_background_refresh(source, clock)  # held across the gc below
    import gc

    gc.collect()
    assert not [r for r in caplog.records if "never retrieved" in r.getMessage()]
    assert any("refresh failed" in r.getMessage() for r in caplog.records)


async def test_a_slow_refresh_serves_the_valid_stale_credentials_meanwhile(
    source: FakeSource, clock: FakeClock
) -> None:
    policy = RefreshPolicy(stale_wait=timedelta(0))  # no real waiting in a unit test
    engine = make_engine(source, clock, policy)
    old = await engine.get(ROLE)
    clock.advance(minutes=40)
    source.gate = asyncio.Event()  # STS hangs
    assert await engine.get(ROLE) is old  # still valid: served rather than timing the SDK out
    source.gate.set()
    await engine.settle()
    assert (await engine.get(ROLE)).access_key_id != old.access_key_id


async def test_a_slow_refresh_is_awaited_when_nothing_valid_is_cached(
    source: FakeSource, clock: FakeClock
) -> None:
    policy = RefreshPolicy(stale_wait=timedelta(0))
    engine = make_engine(source, clock, policy)
    await engine.get(ROLE)
    clock.advance(hours=2)
    source.gate = asyncio.Event()
    waiter = asyncio.create_task(engine.get(ROLE))
    await asyncio.sleep(0.01)
    assert not waiter.done()  # expired ones are never served: it waits
    source.gate.set()
    assert (await waiter).remaining(clock()) == timedelta(hours=1)


class _Stop(Exception):
    pass


async def run_timer(
    source: FakeSource, clock: FakeClock, seconds: float, *, fail: bool = False
) -> list[float]:
    """Prime, then run the background refresher for `seconds` of fake time (its sleeps move the
    clock); the source fails from then on if `fail`. Returns the sleeps it asked for."""
    sleeps: list[float] = []

    async def sleep(delay: float) -> None:
        sleeps.append(delay)
        clock.advance(seconds=delay)
        if clock() >= end:
            raise _Stop

    engine = CredentialEngine({ROLE: source}, POLICY, clock, rng=random.Random(1), sleep=sleep)
    await engine.get(ROLE)
    if fail:
        clock.advance(minutes=25)  # the refresh is due
        source.fail_with = SourceError("Throttling")
    end = clock() + timedelta(seconds=seconds)
    with pytest.raises(_Stop):
        await engine.run()
    return sleeps


async def test_after_a_background_refresh_the_timer_sleeps_until_the_next_one_is_due(
    clock: FakeClock,
) -> None:
    source = FakeSource(clock, lifetime=timedelta(minutes=2))  # due a quarter of its life after a fetch
    await run_timer(source, clock, seconds=10 * 60 + 15)
    assert source.calls == 1 + 20  # every 30 s, not once per max_sleep (60 s)


async def test_after_a_failed_background_refresh_the_timer_retries_after_the_backoff(
    source: FakeSource, clock: FakeClock
) -> None:
    sleeps = await run_timer(source, clock, seconds=20, fail=True)
    assert source.calls > 3  # backoff from 1 s, not a retry per max_sleep (60 s)
    assert max(sleeps) < POLICY.max_sleep.total_seconds()


# --- issue 8's fixes ---------------------------------------------------------------------


async def test_a_non_retryable_refusal_waits_the_backoff_cap_and_is_logged_once(
    source: FakeSource, clock: FakeClock, caplog: pytest.LogCaptureFixture
) -> None:
    engine = make_engine(source, clock)
    await engine.get(ROLE)
    source.fail_with = AssumeRoleDenied("not authorized to perform sts:AssumeRole")
    assert not source.fail_with.retryable
    for _ in range(3):  # three refreshes, each refused the same way
        clock.advance(seconds=POLICY.backoff_cap.total_seconds())
        clock.advance(minutes=30)
        await engine.tick()
        await engine.settle()
        assert engine.status(ROLE).retry_at == clock() + POLICY.backoff_cap
    refused = [r for r in caplog.records if "not retryable" in r.getMessage()]
    assert len(refused) == 1
    assert engine.status(ROLE).failures == 3


async def test_a_retryable_failure_backs_off_with_jitter_under_the_cap(
    source: FakeSource, clock: FakeClock
) -> None:
    engine = await throttled_background_refresh(source, clock)
    retry_at = engine.status(ROLE).retry_at
    assert retry_at is not None and clock() <= retry_at <= clock() + POLICY.backoff_base


async def test_an_unexpected_exception_is_logged_once_with_its_traceback(
    clock: FakeClock, caplog: pytest.LogCaptureFixture
) -> None:
    class Buggy(FakeSource):
        async def fetch(self):  # type: ignore[no-untyped-def]
            self.calls += 1
            raise ZeroDivisionError("a bug")

    source = Buggy(clock)
    no_backoff = RefreshPolicy(backoff_base=timedelta(0), cold_request_interval=timedelta(0))
    engine = make_engine(source, clock, no_backoff)
    for _ in range(3):
        with pytest.raises(CredentialsUnavailable, match="unexpected ZeroDivisionError"):
            await engine.get(ROLE)
    tracebacks = [r for r in caplog.records if r.exc_info and r.exc_info[0] is ZeroDivisionError]
    assert source.calls == 3 and len(tracebacks) == 1
    assert "bug while getting credentials for role" in tracebacks[0].getMessage()


class Chained(FakeSource):
    """A source chained off role `upstream`: records the credentials the engine hands it."""

    def __init__(self, clock: FakeClock, upstream: str) -> None:
        super().__init__(clock, key_prefix="ASIACHAIN")
        self.upstream = upstream
        self.given: list[str] = []

    async def fetch(self, upstream=None):  # type: ignore[no-untyped-def, override]
        assert upstream is not None, "a chained source is always handed its upstream's credentials"
        self.given.append(upstream.access_key_id)
        return await super().fetch()


async def test_a_chained_role_is_handed_its_source_roles_credentials_from_the_cache(
    clock: FakeClock,
) -> None:
    base, chained = FakeSource(clock, key_prefix="ASIABASE"), Chained(clock, upstream="base")
    engine = CredentialEngine({"base": base, "chained": chained}, POLICY, clock)
    base_creds = await engine.get("base")
    await engine.get("chained")
    assert chained.given == [base_creds.access_key_id]
    assert base.calls == 1  # the engine's cached credentials, not a fetch of their own


async def test_a_chained_role_fetches_its_source_role_first_when_nothing_is_cached(
    clock: FakeClock,
) -> None:
    base, chained = FakeSource(clock, key_prefix="ASIABASE"), Chained(clock, upstream="base")
    engine = CredentialEngine({"base": base, "chained": chained}, POLICY, clock)
    await engine.get("chained")
    assert base.calls == 1 and chained.given == [engine.cached("base").access_key_id]  # type: ignore[union-attr]


async def test_a_chained_role_whose_source_fails_says_which_role(clock: FakeClock) -> None:
    base, chained = FakeSource(clock), Chained(clock, upstream="base")
    base.fail_with = AssumeRoleDenied("denied")
    engine = CredentialEngine({"base": base, "chained": chained}, POLICY, clock)
    with pytest.raises(CredentialsUnavailable) as e:
        await engine.get("chained")
    assert "source role base has no credentials" in str(e.value.cause)


def test_a_source_chained_off_an_unknown_role_is_refused(clock: FakeClock) -> None:
    with pytest.raises(ValueError, match="chains off ghost"):
        CredentialEngine({"chained": Chained(clock, upstream="ghost")}, POLICY, clock)


async def test_response_bodies_are_rendered_once_per_credential_set(
    source: FakeSource, clock: FakeClock
) -> None:
    engine = make_engine(source, clock)
    first, again = await engine.served(ROLE), await engine.served(ROLE)
    assert first is again  # the same bytes objects, held beside the cache entry
    assert first.credentials.session_token.encode() in first.imds
    assert b'"AccountId"' in first.imds_extended and b'"AccountId"' not in first.imds
    assert b'"RoleArn"' in first.container
