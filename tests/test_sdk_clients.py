"""Real clients against the real daemon: botocore's default chain, AWS CLI v1 and the AWS SDK
for JavaScript v3 resolve the role's credentials from our endpoint (backed by moto's STS)
and use them, with and without AWS_EC2_METADATA_V1_DISABLED.

Each client is isolated: empty HOME, no config files, no AWS_* variables but the IMDS
endpoint. The daemon only speaks IMDSv2 (imdsv1 is disabled by default), so a client that
fell back to IMDSv1 would get a 401 and no credentials.
"""

from __future__ import annotations

import asyncio
import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import botocore.session
import pytest
import time_machine

from sdk_support import (  # noqa: F401  (the *_fixture names register the fixtures)
    ASSUMED_ROLE,
    JS_DIR,
    Daemon,
    assert_no_secrets,
    aws_cli,
    daemon_fixture,
    expiry,
    isolate_process,
    require_js,
    run,
    sandbox_role_fixture,
    sdk_home_fixture,
    subprocess_env,
)

pytestmark = pytest.mark.sdk

V1 = pytest.mark.parametrize("v1_disabled", [False, True], ids=["default", "v1-disabled"])

#: Our floor: every credential served has at least this long left (DEFAULT_REFRESH_AHEAD).
FLOOR = timedelta(minutes=30)
#: botocore's mandatory refresh window: with less left than this, every use refreshes.
BOTOCORE_MANDATORY = timedelta(minutes=10)
#: From "fresh" to "8 min left" for a 60-minute session: inside botocore's mandatory
#: window and under our floor, so both botocore and the daemon must get new keys.
SHIFT = timedelta(minutes=52)


def same(a: str, b: str) -> bool:
    """Compare secrets without pytest printing them when the assertion fails."""
    return a == b


# --- botocore / boto3 ------------------------------------------------------------------


def _caller_arn(session: botocore.session.Session, aws_url: str) -> str:
    sts = session.create_client("sts", region_name="us-east-1", endpoint_url=aws_url)
    arn: str = sts.get_caller_identity()["Arn"]
    return arn


def _check_botocore_matches(creds: Any, frozen: Any, served: dict[str, str]) -> None:
    # Plain strings: pytest's report of a failure must not print the frozen credentials' repr.
    access_key: str = frozen.access_key
    assert access_key == served["AccessKeyId"]
    assert same(frozen.secret_key, served["SecretAccessKey"]), "secret key differs from the served one"
    assert same(frozen.token, served["Token"]), "session token differs from the served one"
    # botocore's static-stability branch would have rewritten the expiry to now + 17-25 min.
    assert creds._expiry_time == expiry(served)


@V1
async def test_botocore_default_chain_resolves_uses_and_refreshes(
    daemon: Daemon,
    sdk_home: Path,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
    v1_disabled: bool,
) -> None:
    """botocore's default chain gets the served keys from IMDS, STS accepts them as the
    role, and after time moves to 8 min before expiry botocore refreshes to the new keys
    the daemon re-assumed, with no static-stability extension at either step."""
    isolate_process(monkeypatch, sdk_home, daemon.url, v1_disabled=v1_disabled)
    with time_machine.travel(datetime.now(UTC), tick=False) as traveller:
        session = botocore.session.Session()
        creds = await asyncio.to_thread(session.get_credentials)
        assert creds is not None, "botocore's default chain found no credentials"
        assert creds.method == "iam-role"
        first = await asyncio.to_thread(creds.get_frozen_credentials)
        served = await daemon.served()
        _check_botocore_matches(creds, first, served)
        assert expiry(served) - datetime.now(UTC) >= FLOOR
        arn = await asyncio.to_thread(_caller_arn, session, daemon.aws_url)
        assert ASSUMED_ROLE in arn

        traveller.shift(SHIFT)
        left = expiry(served) - datetime.now(UTC)
        assert timedelta(0) < left < BOTOCORE_MANDATORY, "the shift must land in the mandatory window"
        assert left < FLOOR

        second = await asyncio.to_thread(creds.get_frozen_credentials)
        first_key: str = first.access_key
        second_key: str = second.access_key
        assert second_key != first_key, "botocore kept the old keys"
        rotated = await daemon.served()
        _check_botocore_matches(creds, second, rotated)
        assert expiry(rotated) - datetime.now(UTC) >= FLOOR
        arn = await asyncio.to_thread(_caller_arn, session, daemon.aws_url)
        assert ASSUMED_ROLE in arn

    extended = [r for r in caplog.records if "expiration extension" in r.getMessage()]
    assert not extended, f"botocore extended the expiry: {extended[0].getMessage()}"


# --- AWS CLI v1 ------------------------------------------------------------------------


@V1
async def test_aws_cli_v1_uses_served_role_credentials(
    daemon: Daemon, sdk_home: Path, v1_disabled: bool
) -> None:
    """`aws sts get-caller-identity` signs with the role's keys from our endpoint, `aws
    configure list` reports them as iam-role, and no secret is printed."""
    env = subprocess_env(sdk_home, daemon.url, v1_disabled=v1_disabled)
    aws = aws_cli()
    who = (
        await run(
            [
                aws,
                "sts",
                "get-caller-identity",
                "--endpoint-url",
                daemon.aws_url,
                "--region",
                "us-east-1",
                "--output",
                "json",
            ],
            env,
        )
    ).check()
    listed = (await run([aws, "configure", "list"], env)).check()
    served = await daemon.served()

    assert ASSUMED_ROLE in json.loads(who.stdout)["Arn"]
    rows = [line.split() for line in listed.stdout.splitlines()]
    access = next((row for row in rows if row and row[0] == "access_key"), None)
    assert access is not None, f"no access_key row in:\n{listed.stdout}"
    assert access[1].endswith(served["AccessKeyId"][-4:]), access
    assert access[2] == "iam-role", access
    for result in (who, listed):
        assert_no_secrets(f"stderr of {' '.join(result.argv[1:3])}", result.stderr, served)
        assert_no_secrets(f"stdout of {' '.join(result.argv[1:3])}", result.stdout, served)


# --- AWS SDK for JavaScript v3 ---------------------------------------------------------


async def _node_resolve(node: str, daemon: Daemon, home: Path, *, v1_disabled: bool) -> dict[str, Any]:
    env = subprocess_env(home, daemon.url, v1_disabled=v1_disabled, AWS_REGION="us-east-1")
    result = (await run([node, "resolve.mjs", daemon.aws_url], env, cwd=JS_DIR)).check()
    out: dict[str, Any] = json.loads(result.stdout)
    out["_stderr"] = result.stderr
    out["_stdout"] = result.stdout
    return out


@V1
async def test_js_sdk_v3_default_chain_resolves_and_calls_sts(
    daemon: Daemon, sdk_home: Path, v1_disabled: bool
) -> None:
    """The JS SDK's defaultProvider returns the served keys and expiry; an STSClient with no
    explicit credentials resolves the same keys and STS sees the role."""
    node = require_js()
    out = await _node_resolve(node, daemon, sdk_home, v1_disabled=v1_disabled)
    served = await daemon.served()

    assert out["accessKeyId"] == served["AccessKeyId"]
    assert out["expiration"] is not None
    assert datetime.fromisoformat(out["expiration"]) == expiry(served)
    assert out["stsAccessKeyId"] == served["AccessKeyId"]
    assert ASSUMED_ROLE in out["arn"]
    assert_no_secrets("node's stderr", out["_stderr"], served)
    assert_no_secrets("node's stdout", out["_stdout"], served)


async def test_js_sdk_v3_picks_up_rotated_keys(daemon: Daemon, sdk_home: Path) -> None:
    """After the daemon's clock passes the refresh point, a new JS resolution gets the new
    keys the daemon re-assumed (node keeps its real clock; only ours moves)."""
    node = require_js()
    before = await _node_resolve(node, daemon, sdk_home, v1_disabled=True)
    served = await daemon.served()
    assert before["accessKeyId"] == served["AccessKeyId"]

    with time_machine.travel(datetime.now(UTC) + SHIFT, tick=False):
        assert expiry(served) - datetime.now(UTC) < FLOOR, "the shift must pass our refresh point"
        after = await _node_resolve(node, daemon, sdk_home, v1_disabled=True)
        rotated = await daemon.served()

    assert after["accessKeyId"] != before["accessKeyId"], "the daemon did not rotate"
    assert after["accessKeyId"] == rotated["AccessKeyId"]
    assert datetime.fromisoformat(after["expiration"]) == expiry(rotated)
    assert ASSUMED_ROLE in after["arn"]
    for out in (before, after):
        assert_no_secrets("node's output", out["_stdout"] + out["_stderr"], served, rotated)
