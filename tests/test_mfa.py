"""MFA without blocking: codes arrive out of band, requests never wait for one, the engine does
not retry a source that needs a human, and an MFA session's end is warned about on time.
All by a fake clock and a fake STS client at the boto3 boundary."""

from __future__ import annotations

import asyncio
import json
import logging
import random
import sys
from datetime import timedelta
from pathlib import Path

import pytest
from aiohttp.test_utils import TestClient

from imds_proxy import config
from imds_proxy.aws.sts import AssumeRoleSource
from imds_proxy.config.roles import RoleSpec
from imds_proxy.engine.mfa import MfaSession, run_process
from imds_proxy.engine.policy import RefreshPolicy
from imds_proxy.engine.refresh import CredentialEngine
from imds_proxy.engine.tokens import TokenIssuer
from imds_proxy.errors import CredentialsUnavailable, MfaRequired, SourceError
from imds_proxy.runtime.mfa_watcher import MfaWatcher, command_notifier
from imds_proxy.server.app import create_app

from conftest import ROLE, TOKEN, TTL, AppFactory
from fakes import FakeClock, FakeSource, FakeSts

SERIAL = "arn:aws:iam::123456789012:mfa/alice"
ROLE_ARN = "arn:aws:iam::123456789012:role/admin"
POLICY = RefreshPolicy()


def spec(**values: object) -> RoleSpec:
    return config.build({"role_arn": ROLE_ARN, "mfa_serial": SERIAL, **values}).role


def mfa_source(
    clock: FakeClock, sts: FakeSts, process: str | None = None, **values: object
) -> tuple[AssumeRoleSource, MfaSession]:
    role = spec(**values)
    session = MfaSession(SERIAL, role.mfa_duration, process, timedelta(minutes=30))
    session.roles.append("admin")
    source = AssumeRoleSource(role, clock, lambda _s: sts, mfa=session, keyed_client=sts.keyed)
    return source, session


# --- the engine: a source that needs input is left alone until it gets some ----------------


class NeedsCode(FakeSource):
    """Raises MfaRequired until `code` is set."""

    code: str | None = None

    async def fetch(self):  # type: ignore[no-untyped-def]
        if self.code is None:
            self.calls += 1
            raise MfaRequired("role test-role needs an MFA code: run `imds-proxy mfa --role test-role`")
        return await super().fetch()


async def test_waiting_for_input_is_not_retried_by_the_timer(clock: FakeClock) -> None:
    source = NeedsCode(clock)
    engine = CredentialEngine({ROLE: source}, POLICY, clock, rng=random.Random(1))
    with pytest.raises(CredentialsUnavailable):
        await engine.get(ROLE)
    for _ in range(24 * 60):  # a day, minute by minute
        clock.advance(minutes=1)
        assert await engine.tick() == POLICY.max_sleep.total_seconds()
        await engine.settle()
    assert source.calls == 1  # no retry storm
    status = engine.status(ROLE)
    assert status.waiting and status.retry_at is None and "imds-proxy mfa" in str(status.last_error)


async def test_requests_during_the_wait_never_block_and_never_call_the_source(clock: FakeClock) -> None:
    source = NeedsCode(clock)
    engine = CredentialEngine({ROLE: source}, POLICY, clock, rng=random.Random(1))
    with pytest.raises(CredentialsUnavailable):
        await engine.get(ROLE)
    source.gate = asyncio.Event()  # were the source called, it would now hang
    results = await asyncio.wait_for(
        asyncio.gather(*(engine.get(ROLE) for _ in range(200)), return_exceptions=True), timeout=1
    )
    assert all(isinstance(r, CredentialsUnavailable) and r.code == "MfaRequired" for r in results)
    assert source.calls == 1


async def test_wake_fetches_at_once_and_ends_the_wait(clock: FakeClock) -> None:
    source = NeedsCode(clock)
    engine = CredentialEngine({ROLE: source}, POLICY, clock, rng=random.Random(1))
    with pytest.raises(CredentialsUnavailable):
        await engine.get(ROLE)
    source.code = "123456"
    creds = await engine.wake(ROLE)
    assert await engine.get(ROLE) is creds
    assert not engine.waiting(ROLE) and engine.status(ROLE).failures == 0


async def test_a_waiting_role_keeps_serving_its_valid_credentials(clock: FakeClock) -> None:
    source = NeedsCode(clock)
    source.code = "123456"
    engine = CredentialEngine({ROLE: source}, POLICY, clock, rng=random.Random(1))
    current = await engine.get(ROLE)
    source.code = None  # the MFA session ended
    clock.advance(minutes=26)
    await engine.tick()
    await engine.settle()
    assert engine.waiting(ROLE)
    clock.advance(minutes=30)  # 4 min left: under the floor, but valid
    assert await engine.get(ROLE) is current
    clock.advance(minutes=3, seconds=1)  # inside the expiry margin
    with pytest.raises(CredentialsUnavailable, match="imds-proxy mfa"):
        await engine.get(ROLE)


# --- the MFA session and the STS calls ---------------------------------------------------------


def test_a_code_is_six_digits_and_is_used_once() -> None:
    session = MfaSession(SERIAL, 3600, None, timedelta(minutes=30))
    for bad in ("12345", "1234567", "abcdef", ""):
        with pytest.raises(ValueError, match="six digits"):
            session.offer(bad)
    session.offer(" 123456\n")
    assert session.take_code() == "123456"
    assert session.take_code() is None


async def test_without_a_code_the_source_says_how_to_give_one_and_calls_nothing(clock: FakeClock) -> None:
    sts = FakeSts(clock)
    source, _ = mfa_source(clock, sts)
    with pytest.raises(MfaRequired, match=r"run `imds-proxy mfa --role admin`"):
        await source.fetch()
    assert sts.log == []


async def test_a_code_opens_a_session_and_assume_role_signs_with_it(clock: FakeClock) -> None:
    sts = FakeSts(clock)
    source, session = mfa_source(clock, sts, mfa_duration=129600)
    session.offer("123456")
    await source.fetch()
    [opened] = sts.calls("GetSessionToken")
    assert opened == {
        "operation": "GetSessionToken",
        "signer": "SOURCE",
        "SerialNumber": SERIAL,
        "TokenCode": "123456",
        "DurationSeconds": 129600,  # 36 h: one code lasts a long time
    }
    [assumed] = sts.calls("AssumeRole")
    assert session.keys is not None and assumed["signer"] == session.keys.access_key_id
    assert "TokenCode" not in assumed  # the session carries the MFA
    assert session.expires == clock() + timedelta(hours=36)


async def test_the_session_serves_refreshes_until_it_ends(clock: FakeClock) -> None:
    sts = FakeSts(clock)
    source, session = mfa_source(clock, sts, mfa_duration=43200)
    session.offer("123456")
    await source.fetch()
    for _ in range(11):
        clock.advance(hours=1)
        await source.fetch()
    assert len(sts.calls("GetSessionToken")) == 1 and len(sts.calls("AssumeRole")) == 12
    clock.advance(minutes=59)  # under 2 min left on the session: not used again
    with pytest.raises(MfaRequired):
        await source.fetch()


async def test_a_new_code_renews_a_session_still_valid(clock: FakeClock) -> None:
    sts = FakeSts(clock)
    source, session = mfa_source(clock, sts)
    session.offer("123456")
    await source.fetch()
    first = session.expires
    clock.advance(hours=11, minutes=45)  # warned: the user renews early
    session.offer("654321")
    await source.fetch()
    assert len(sts.calls("GetSessionToken")) == 2
    assert first is not None and session.expires == first + timedelta(hours=11, minutes=45)


async def test_a_refused_code_waits_for_another(clock: FakeClock) -> None:
    sts = FakeSts(clock)
    source, session = mfa_source(clock, sts)
    session.offer("999999")
    with pytest.raises(MfaRequired, match="refused the MFA code") as raised:
        await source.fetch()
    assert raised.value.needs_input and "999999" not in str(raised.value)


async def test_temporary_source_credentials_hand_the_code_to_assume_role(clock: FakeClock) -> None:
    sts = FakeSts(clock)
    sts.temporary = True  # e.g. the source is an SSO role: GetSessionToken refuses it
    source, session = mfa_source(clock, sts)
    session.offer("123456")
    creds = await source.fetch()
    [assumed] = sts.calls("AssumeRole")
    assert (assumed["SerialNumber"], assumed["TokenCode"], assumed["signer"]) == (SERIAL, "123456", "SOURCE")
    assert session.keys is None and session.expires == creds.expiration
    clock.advance(minutes=30)
    with pytest.raises(MfaRequired):  # every refresh needs a code in this mode
        await source.fetch()


async def test_mfa_process_supplies_the_code(clock: FakeClock, tmp_path: Path) -> None:
    sts = FakeSts(clock)
    script = tmp_path / "otp.py"
    script.write_text("print('unlocking vault...'); print('654321')\n")
    source, _ = mfa_source(clock, sts, mfa_process=f"{sys.executable} {script}")
    source.mfa.process = (sys.executable, str(script))  # type: ignore[union-attr]
    await source.fetch()
    assert sts.calls("GetSessionToken")[0]["TokenCode"] == "654321"


@pytest.mark.parametrize(
    ("code", "says"),
    [
        ("import sys; print('secret-ish output'); sys.exit(3)", "exited with status 3"),
        ("print('hunter2')", "did not print a six-digit code"),
    ],
)
def test_mfa_process_failures_never_repeat_its_output(code: str, says: str) -> None:
    with pytest.raises(SourceError) as raised:
        run_process([sys.executable, "-c", code])
    assert says in str(raised.value)
    assert "secret-ish" not in str(raised.value) and "hunter2" not in str(raised.value)


def test_mfa_process_that_does_not_exist() -> None:
    with pytest.raises(SourceError, match="was not found"):
        run_process(["/no/such/otp-tool"])


# --- the warning before the session ends, and the error document after -------------------------


async def test_the_session_end_is_warned_about_then_answers_with_the_error_document(
    clock: FakeClock, aiohttp_client: object, caplog: pytest.LogCaptureFixture
) -> None:
    sts = FakeSts(clock)
    source, session = mfa_source(clock, sts, mfa_duration=7200)
    cfg = config.build({"role_arn": ROLE_ARN, "listen": ["127.0.0.1:0"]})
    engine = CredentialEngine({"admin": source}, RefreshPolicy.of(cfg), clock, rng=random.Random(1))
    notes: list[str] = []

    async def notify(message: str) -> None:
        notes.append(message)

    watcher = MfaWatcher([session], clock, notify)
    app = create_app(cfg, engine, clock=clock, tokens=TokenIssuer(clock.seconds))
    client: TestClient = await aiohttp_client(app)  # type: ignore[operator]

    async def served() -> dict[str, str]:
        put = await client.put("/latest/api/token", headers={TTL: "60"})
        resp = await client.get(
            "/latest/meta-data/iam/security-credentials/admin", headers={TOKEN: await put.text()}
        )
        assert resp.status == 200
        doc: dict[str, str] = json.loads(await resp.text())
        return doc

    assert (await served())["Code"] == "MfaRequired"  # started without a code: no blocking
    session.offer("123456")
    await engine.wake("admin")  # what `imds-proxy mfa` does
    end = session.expires
    assert end == clock() + timedelta(hours=2)

    async def minute() -> None:
        clock.advance(minutes=1)
        await engine.tick()
        await engine.settle()
        await watcher.tick()

    while clock() < end - timedelta(minutes=31):
        await minute()
        assert (await served())["Code"] == "Success"
    assert session.warnings == 0 and notes == []
    await minute()  # 30 min before the end: warned, once
    assert session.warnings == 1 and len(notes) == 1
    assert "ends in 30m00s" in notes[0] and "imds-proxy mfa --role admin" in notes[0]
    assert any(r.levelno == logging.WARNING and "MFA session" in r.getMessage() for r in caplog.records)
    while clock() < end:
        await minute()
        assert (await served())["Code"] == "Success"  # still serving valid role credentials
    assert session.warnings == 2 and "ended" in notes[1]  # and once more when it ends
    calls = len(sts.log)
    for _ in range(90):
        await minute()
    assert len(sts.log) == calls  # no retry storm after the end
    doc = await served()
    assert doc["Code"] == "MfaRequired" and "AccessKeyId" not in doc
    assert "run `imds-proxy mfa --role admin`" in doc["Message"]
    assert session.warnings == 2


async def test_the_watcher_sleeps_until_the_next_warning(clock: FakeClock) -> None:
    session = MfaSession(SERIAL, 3600, None, timedelta(minutes=30))
    watcher = MfaWatcher([session], clock, max_sleep=timedelta(hours=1))
    assert await watcher.tick() == 3600  # nothing opened: re-check after max_sleep
    session.opened(None, clock() + timedelta(minutes=40))
    assert await watcher.tick() == 600
    clock.advance(minutes=10)
    assert await watcher.tick() == 1800  # warned; next: the end itself


def test_sessions_renewed_by_a_process_raise_no_warnings(clock: FakeClock) -> None:
    session = MfaSession(SERIAL, 3600, "otp-tool", timedelta(minutes=30))
    session.opened(None, clock() + timedelta(minutes=5))
    assert session.due(clock()) is None and session.next_due() is None


async def test_the_notify_command_gets_the_message(tmp_path: Path) -> None:
    out = tmp_path / "note"
    script = f"import sys, pathlib; pathlib.Path({str(out)!r}).write_text(sys.argv[1])"
    await command_notifier([sys.executable, "-c", script])("MFA session ends in 5m")
    assert out.read_text() == "MFA session ends in 5m"


async def test_a_failing_notify_command_is_logged_not_raised(caplog: pytest.LogCaptureFixture) -> None:
    await command_notifier(["/no/such/notifier"])("x")
    await command_notifier([sys.executable, "-c", "raise SystemExit(4)"])("x")
    messages = [r.getMessage() for r in caplog.records if r.name == "imds_proxy.mfa"]
    assert any("could not run" in m for m in messages) and any("status 4" in m for m in messages)


async def test_requests_over_http_during_the_wait_get_the_error_document_at_once(
    imds: AppFactory, engine: CredentialEngine, source: FakeSource
) -> None:
    source.fail_with = MfaRequired(f"role {ROLE} needs an MFA code: run `imds-proxy mfa --role {ROLE}`")
    client = await imds()
    token = await (await client.put("/latest/api/token", headers={TTL: "60"})).text()
    for _ in range(3):
        resp = await asyncio.wait_for(
            client.get(f"/latest/meta-data/iam/security-credentials/{ROLE}", headers={TOKEN: token}),
            timeout=2,
        )
        doc = json.loads(await resp.text())
        assert resp.status == 200 and doc["Code"] == "MfaRequired"
        assert f"run `imds-proxy mfa --role {ROLE}`" in doc["Message"]
        source.gate = asyncio.Event()  # after the first answer, a call to the source would hang
    assert source.calls == 1
