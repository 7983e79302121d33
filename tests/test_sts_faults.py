"""STS faults, with the injected clock: an outage longer than the refresh window, throttling,
10 s of latency, and two roles refreshing at once on one MFA session. Requests go over HTTP to
the real app; the timer is driven by `tick`, never by sleeping."""

from __future__ import annotations

import asyncio
import itertools
import json
import random
import sys
import time
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from aiohttp.test_utils import TestClient

from imds_proxy import config
from imds_proxy.aws.sts import AssumeRoleSource
from imds_proxy.engine.credentials import Credentials
from imds_proxy.engine.mfa import MfaSession
from imds_proxy.engine.policy import RefreshPolicy
from imds_proxy.engine.refresh import CredentialEngine
from imds_proxy.engine.tokens import TokenIssuer
from imds_proxy.errors import SourceError
from imds_proxy.runtime.mfa_watcher import wake_on_open
from imds_proxy.server.app import create_app

from conftest import ROLE, TOKEN, AppFactory, get_token, make_config
from fakes import FakeClock, FakeSource, FakeSts, remember

POLICY = RefreshPolicy()
CREDS_PATH = f"/latest/meta-data/iam/security-credentials/{ROLE}"


async def ask(client: TestClient, token: str) -> dict[str, Any]:
    resp = await client.get(CREDS_PATH, headers={TOKEN: token})
    assert resp.status == 200  # EC2 answers its error document with 200 too
    doc: dict[str, Any] = json.loads(await resp.text())
    return remember(doc)


def expiry(doc: dict[str, Any]) -> datetime:
    return datetime.fromisoformat(doc["Expiration"].replace("Z", "+00:00"))


async def step(engine: CredentialEngine, clock: FakeClock, seconds: float) -> None:
    clock.advance(seconds=seconds)
    await engine.tick()
    await engine.settle()


async def test_an_outage_twice_the_refresh_window_serves_valid_credentials_then_recovers_in_seconds(
    imds: AppFactory, engine: CredentialEngine, source: FakeSource, clock: FakeClock
) -> None:
    client = await imds()
    token = await get_token(client)
    first = expiry(await ask(client, token))
    due = first - POLICY.refresh_ahead - POLICY.lead  # 25 min after issue
    window = first - due  # 35 min from the refresh being due to expiry
    await step(engine, clock, (due - clock()).total_seconds())
    source.fail_with = SourceError("cannot reach STS (injected)")
    back = clock() + 2 * window
    error_docs = 0
    while clock() < back:
        doc = await ask(client, token)
        if doc["Code"] == "Success":
            assert expiry(doc) - clock() > POLICY.expiry_margin  # never expired, never nearly
        else:
            assert clock() >= first - POLICY.expiry_margin  # the error document only past the margin
            error_docs += 1
        await step(engine, clock, 10)
    assert error_docs > 0  # the outage did outlast the credentials
    calls_in_outage = source.calls
    source.fail_with = None  # STS is back
    recovered = clock()
    while (doc := await ask(client, token))["Code"] != "Success":
        assert clock() - recovered <= timedelta(seconds=5), "STS back, yet no credentials within 5 s"
        await step(engine, clock, 1)
    assert expiry(doc) - clock() >= POLICY.refresh_ahead
    # 70 min of outage, a request every 10 s: STS was not asked once per request.
    assert calls_in_outage < 2 * window.total_seconds() / 10 / 2


async def test_throttling_backs_off_with_jitter_and_a_crowd_makes_one_call(
    imds: AppFactory, engine: CredentialEngine, source: FakeSource, clock: FakeClock
) -> None:
    client = await imds()
    token = await get_token(client)
    source.fail_with = SourceError("Throttling: Rate exceeded (injected)")
    calls: list[datetime] = []
    fetch = source.fetch

    async def timed() -> Credentials:
        calls.append(clock())
        return await fetch()

    source.fetch = timed  # type: ignore[method-assign]
    docs = await asyncio.gather(*(ask(client, token) for _ in range(100)))  # a cold crowd
    assert len(calls) == 1 and all(d["Code"] != "Success" for d in docs)
    for _ in range(120):  # a minute of a request every half second, and the timer
        await ask(client, token)
        await step(engine, clock, 0.5)
    gaps = [later - earlier for earlier, later in itertools.pairwise(calls)]
    assert min(gaps) >= POLICY.cold_request_interval  # one call per 2 s at most, not per request
    assert len(calls) <= 60 / POLICY.cold_request_interval.total_seconds() + 1


async def test_roles_throttled_together_retry_at_different_times(clock: FakeClock) -> None:
    sources = {f"r{i}": FakeSource(clock, role_arn=f"arn:aws:iam::123456789012:role/r{i}") for i in range(8)}
    engine = CredentialEngine(dict(sources), POLICY, clock, rng=random.Random(5))
    for name in sources:
        await engine.get(name)
    for s in sources.values():
        s.fail_with = SourceError("Throttling (injected)")
    await step(engine, clock, 26 * 60)
    for _ in range(4):  # a few rounds of failures: the delays grow, each one jittered
        await step(engine, clock, 20)
    retry = {engine.status(n).retry_at for n in sources}
    assert len(retry) == len(sources)  # no two roles come back in the same instant


class Slow(FakeSource):
    """STS answering after `delay` seconds of real latency."""

    delay = 0.0

    async def fetch(self) -> Credentials:
        await asyncio.sleep(self.delay)
        return await super().fetch()


async def slow_app(aiohttp_client: Any, clock: FakeClock) -> tuple[TestClient, CredentialEngine, Slow]:
    source = Slow(clock)
    engine = CredentialEngine({ROLE: source}, POLICY, clock)
    app = create_app(make_config(), engine, clock=clock, tokens=TokenIssuer(clock.seconds))
    return await aiohttp_client(app), engine, source


def cancel_refreshes() -> None:
    """The 10 s refresh is not left running past the test."""
    for task in asyncio.all_tasks():
        if task.get_name().startswith("refresh "):
            task.cancel()


async def test_ten_seconds_of_sts_latency_hold_a_cold_request_under_a_second(
    aiohttp_client: Any, clock: FakeClock
) -> None:
    client, _, source = await slow_app(aiohttp_client, clock)
    token = await get_token(client)
    source.delay = 10
    started = time.monotonic()
    doc = await ask(client, token)  # nothing held: EC2's error document, not a hang
    waited = time.monotonic() - started
    cancel_refreshes()
    assert doc["Code"] != "Success"
    assert waited < 2.5  # cold_wait is 0.9 s; STS would have taken 10 s


async def test_ten_seconds_of_sts_latency_serve_the_valid_ones_held_at_once(
    aiohttp_client: Any, clock: FakeClock
) -> None:
    client, engine, source = await slow_app(aiohttp_client, clock)
    token = await get_token(client)
    held = await engine.get(ROLE)
    source.delay = 10
    clock.advance(minutes=40)  # under the floor: a refresh is due, the old ones still valid
    started = time.monotonic()
    doc = await ask(client, token)
    waited = time.monotonic() - started
    cancel_refreshes()
    assert doc["AccessKeyId"] == held.access_key_id
    assert waited < 2.5  # stale_wait is 0.5 s


def shared_mfa_sources(
    clock: FakeClock, sts: FakeSts, process: str | None
) -> tuple[dict[str, AssumeRoleSource], MfaSession]:
    serial = "arn:aws:iam::123456789012:mfa/alice"
    session = MfaSession(serial, 43200, process, timedelta(minutes=30))
    sources = {}
    for name in ("admin", "billing"):
        spec = config.build({"role_arn": f"arn:aws:iam::123456789012:role/{name}", "mfa_serial": serial}).role
        sources[name] = AssumeRoleSource(spec, clock, lambda _s: sts, mfa=session, keyed_client=sts.keyed)
        session.roles.append(name)
    return sources, session


async def test_two_roles_on_one_mfa_session_refreshing_at_once_run_mfa_process_once(
    clock: FakeClock, tmp_path: Path
) -> None:
    runs = tmp_path / "runs"
    script = tmp_path / "otp.py"
    script.write_text(f"open({str(runs)!r}, 'a').write('x'); print('123456')\n")
    sts = FakeSts(clock)
    sources, _ = shared_mfa_sources(clock, sts, f"{sys.executable} {script}")
    engine = CredentialEngine(dict(sources), POLICY, clock)
    await engine.tick()  # both are due in the same tick
    await engine.settle()
    assert runs.read_text() == "x"  # one mfa_process run
    assert len(sts.calls("GetSessionToken")) == 1
    assert engine.cached("admin") is not None and engine.cached("billing") is not None
    assert not engine.waiting("admin") and not engine.waiting("billing")


async def test_a_role_waiting_on_a_session_goes_on_when_a_sibling_opens_it(clock: FakeClock) -> None:
    sts = FakeSts(clock)
    sources, session = shared_mfa_sources(clock, sts, None)
    engine = CredentialEngine(dict(sources), POLICY, clock)
    wake_on_open([session], engine)
    await engine.tick()
    await engine.settle()
    assert engine.waiting("admin") and engine.waiting("billing")  # no code yet
    session.offer("123456")
    await engine.wake("admin")  # the code reaches one role
    for _ in range(20):  # the sibling is told on the loop, from the thread that opened the session
        await asyncio.sleep(0.01)
        await engine.settle()
        if engine.cached("billing") is not None:
            break
    assert engine.cached("billing") is not None and not engine.waiting("billing")
    assert len(sts.calls("GetSessionToken")) == 1
