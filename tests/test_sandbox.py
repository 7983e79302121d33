"""The sandbox end to end: each built-in scenario in its own process (moto's IAM enforcement is
process-wide, and this test process runs an unenforced moto), used through our IMDS endpoint by boto3
in this process, and by the AWS CLI."""

from __future__ import annotations

import os
import re
import shlex
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import boto3
import botocore.exceptions as bce
import pytest

from fakes import remember
from procs import Daemon, daemon, dropped, imds_credentials, isolated_env, isolated_vars, run

SESSION = "sandbox-test"
READY = r"^Ctrl-C stops\.$"


class Sandbox:
    def __init__(self, proc: Daemon, home: Path) -> None:
        self.proc = proc
        self.home = home
        self.exports = dict(
            line.removeprefix("export ").split("=", 1) for line in proc.stdout if line.startswith("export ")
        )
        self.imds = self.exports["AWS_EC2_METADATA_SERVICE_ENDPOINT"]
        self.aws = self.exports["AWS_ENDPOINT_URL"]

    def tries(self, label: str) -> list[str]:
        """The commands the start-up summary suggests, by label (allowed, denied, fails)."""
        found = (re.fullmatch(rf"  {label} +(aws [^#]*?)( +#.*)?", line) for line in self.proc.stderr)
        return [m.group(1) for m in found if m]


@contextmanager
def sandbox(home: Path, *args: str) -> Iterator[Sandbox]:
    argv = ["sandbox", "--listen", "127.0.0.1:0", "--role-session-name", SESSION, *args]
    with daemon(argv, isolated_env(home)) as d:
        d.wait_for(READY, timeout=30)
        d.wait_for(r"^export AWS_DEFAULT_REGION=")  # stdout is read by another thread than stderr
        yield Sandbox(d, home)


@contextmanager
def through_imds(box: Sandbox) -> Iterator[None]:
    """This process's boto3 sees only the sandbox's exports: no keys, profiles or config of the user's."""
    with pytest.MonkeyPatch.context() as mp:
        for name in [n for n in os.environ if dropped(n)]:
            mp.delenv(name)
        for name, value in {**isolated_vars(box.home), **box.exports}.items():
            mp.setenv(name, value)
        yield


def imds_document(box: Sandbox) -> dict[str, Any]:
    """The role's credentials document over the raw IMDSv2 protocol."""
    return remember(imds_credentials(box.imds))


def error_code(call: Any, **params: Any) -> str:
    with pytest.raises(bce.ClientError) as caught:
        call(**params)
    code: str = caught.value.response["Error"]["Code"]
    return code


def started(request: pytest.FixtureRequest, name: str, *args: str) -> Iterator[Sandbox]:
    home = request.getfixturevalue("tmp_path_factory").mktemp(name)
    with sandbox(home, *args) as box:
        yield box


@pytest.fixture(scope="module")
def photos(request: pytest.FixtureRequest) -> Iterator[Sandbox]:
    yield from started(request, "photos")


@pytest.fixture(scope="module")
def cross_account(request: pytest.FixtureRequest) -> Iterator[Sandbox]:
    yield from started(request, "cross", "--scenario", "cross-account")


@pytest.fixture(scope="module")
def rotating(request: pytest.FixtureRequest) -> Iterator[Sandbox]:
    yield from started(request, "rotating", "--served-lifetime", "6")


def test_photos_reads_the_bucket_and_is_denied_writing(photos: Sandbox) -> None:
    with through_imds(photos):
        s3 = boto3.Session().client("s3")
        listed = s3.list_objects_v2(Bucket="photos")
        assert sorted(o["Key"] for o in listed["Contents"]) == ["cat.jpg", "holiday/beach.jpg"]
        assert s3.get_object(Bucket="photos", Key="cat.jpg")["Body"].read().startswith(b"not really a JPEG")
        assert error_code(s3.put_object, Bucket="photos", Key="dog.jpg", Body=b"woof") == "AccessDenied"
        assert error_code(s3.list_buckets) == "AccessDenied"  # the role may read one bucket only


def test_photos_caller_is_the_assumed_instance_role(photos: Sandbox) -> None:
    with through_imds(photos):
        arn = boto3.Session().client("sts").get_caller_identity()["Arn"]
    assert arn == f"arn:aws:sts::123456789012:assumed-role/photos-reader/{SESSION}"


def test_the_local_aws_refuses_keys_it_did_not_issue(photos: Sandbox) -> None:
    with through_imds(photos):
        s3 = boto3.client("s3", aws_access_key_id="AKIAIOSFODNN7EXAMPLE", aws_secret_access_key="x" * 40)
        assert error_code(s3.list_objects_v2, Bucket="photos") == "InvalidAccessKeyId"


@pytest.mark.parametrize(
    ("scenario", "source"),
    [
        (
            "photos",
            "local AWS as arn:aws:iam::123456789012:user/imds-proxy-ec2, standing in for ec2.amazonaws.com",
        ),
        ("cross_account", "local AWS as arn:aws:iam::111122223333:user/Bob"),
    ],
)
def test_roles_shows_the_keys_the_sandbox_calls_sts_with(
    request: pytest.FixtureRequest, scenario: str, source: str
) -> None:
    box: Sandbox = request.getfixturevalue(scenario)
    result = run(["roles"], isolated_env(box.home))  # the sandbox's own control socket, under its home
    assert result.returncode == 0, result.stderr
    [header, row] = result.stdout.splitlines()
    assert header.endswith("  SOURCE") and row.endswith(f"  {source}")
    assert "default credential chain" not in result.stdout


def test_cross_account_role_reads_its_bucket_and_is_denied_writing(cross_account: Sandbox) -> None:
    with through_imds(cross_account):
        session = boto3.Session()
        arn = session.client("sts").get_caller_identity()["Arn"]
        s3 = session.client("s3")
        body = s3.get_object(Bucket="reports", Key="q3.csv")["Body"].read()
        assert s3.list_objects_v2(Bucket="reports")["KeyCount"] == 1
        assert error_code(s3.put_object, Bucket="reports", Key="q4.csv", Body=b"") == "AccessDenied"
    assert arn == f"arn:aws:sts::444455556666:assumed-role/foo/{SESSION}"
    assert body.startswith(b"region,revenue")
    assert "assumed by arn:aws:iam::111122223333:user/Bob" in "\n".join(cross_account.proc.stderr)


@pytest.mark.parametrize(
    ("variant", "cause"),
    [
        (
            "caller-lacks-permission",
            "the caller (arn:aws:iam::111122223333:user/Bob) is not allowed sts:AssumeRole on "
            "arn:aws:iam::444455556666:role/foo: add it to the caller's permissions policy",
        ),
        (
            "trust-names-someone-else",
            "the trust policy of arn:aws:iam::444455556666:role/foo does not trust "
            "arn:aws:iam::111122223333:user/Bob: add it as a principal",
        ),
    ],
)
def test_cross_account_with_one_side_missing_fails_at_start_naming_the_side(
    tmp_path: Path, variant: str, cause: str
) -> None:
    argv = ["sandbox", "--scenario", "cross-account", "--variant", variant, "--listen", "127.0.0.1:0"]
    result = run(argv, isolated_env(tmp_path))
    assert result.returncode == 1
    errors = [line for line in result.stderr.splitlines() if line.startswith("imds-proxy:")]
    assert len(errors) == 1
    assert errors[0].startswith(f"imds-proxy: cannot serve role foo: {cause} (AWS says: AccessDenied: ")
    assert "Traceback" not in result.stderr
    assert not result.stdout  # no export lines: nothing is served


def test_untrusted_role_gets_ec2s_error_document_and_sdks_find_no_credentials(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    with sandbox(tmp_path, "--scenario", "untrusted") as box:
        doc = imds_document(box)
        assert doc["Code"] == "AssumeRoleUnauthorizedAccess"
        assert "does not trust ec2.amazonaws.com" in doc["Message"]
        assert "AccessKeyId" not in doc
        with through_imds(box), pytest.raises(bce.NoCredentialsError):
            boto3.Session().client("sts").get_caller_identity()
        assert box.tries("fails") == ["aws sts get-caller-identity", "aws s3 ls s3://photos"]
    # botocore says why only in its debug log; the Go SDKs report "Code: Message".
    assert any(
        "AssumeRoleUnauthorizedAccess" in r.getMessage() for r in caplog.records if r.name == "botocore.utils"
    )
    assert any(line.startswith("  NOTE      the role cannot be assumed") for line in box.proc.stderr)


def test_rotation_serves_new_keys_and_the_old_ones_stay_valid_past_their_served_expiry(
    rotating: Sandbox,
) -> None:
    first = imds_document(rotating)
    deadline = time.monotonic() + 10
    second = first
    while second["AccessKeyId"] == first["AccessKeyId"] and time.monotonic() < deadline:
        time.sleep(0.25)
        second = imds_document(rotating)
    assert second["AccessKeyId"] != first["AccessKeyId"]
    for doc in (first, second):  # each set says it lives 6 s, and each rotation was logged
        lived = wire_time(doc["Expiration"]) - wire_time(doc["LastUpdated"])
        assert lived == timedelta(seconds=6)
        rotating.proc.wait_for(rf"rotation role=\S+ key=…{doc['AccessKeyId'][-4:]} ")
    served_expiry = wire_time(first["Expiration"])
    time.sleep(max(0.0, (served_expiry - datetime.now(UTC)).total_seconds() + 1))
    with through_imds(rotating):
        for doc in (first, second):  # STS keys: valid until their STS expiry, an hour away
            s3 = boto3.client(
                "s3",
                aws_access_key_id=doc["AccessKeyId"],
                aws_secret_access_key=doc["SecretAccessKey"],
                aws_session_token=doc["Token"],
            )
            assert s3.list_objects_v2(Bucket="photos")["KeyCount"] == 2


def test_botocore_extends_credentials_served_with_little_life_left(
    rotating: Sandbox, caplog: pytest.LogCaptureFixture
) -> None:
    # botocore.utils._evaluate_expiration: under 15 min + 2-10 min jitter left, the expiry becomes
    # now + that window (17-25 min), and it says so at INFO (protocol.md §4.1).
    with through_imds(rotating):
        creds = boto3.Session().get_credentials()
        assert creds is not None and creds.method == "iam-role"
        extended = creds._expiry_time - datetime.now(UTC)  # what botocore now believes; private
        creds.get_frozen_credentials()
    assert timedelta(minutes=17) - timedelta(seconds=5) <= extended <= timedelta(minutes=25)
    assert any(
        r.name == "botocore.utils" and r.getMessage().startswith("Attempting credential expiration extension")
        for r in caplog.records
    )


def wire_time(text: str) -> datetime:
    return datetime.strptime(text, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC)


@pytest.mark.sdk
@pytest.mark.parametrize("scenario", ["photos", "cross_account"])
def test_the_aws_cli_does_what_the_summary_says(request: pytest.FixtureRequest, scenario: str) -> None:
    box: Sandbox = request.getfixturevalue(scenario)
    aws = Path(sys.executable).parent / "aws"
    env = isolated_env(box.home, box.exports)

    def cli(command: str) -> subprocess.CompletedProcess[str]:
        argv = shlex.split(command)
        assert argv[0] == "aws"
        return subprocess.run([str(aws), *argv[1:]], env=env, capture_output=True, text=True, timeout=60)

    allowed, denied = box.tries("allowed"), box.tries("denied")
    assert allowed[0] == "aws sts get-caller-identity" and len(allowed) == 3 and len(denied) == 1
    for command in allowed:
        result = cli(command)
        assert result.returncode == 0, f"{command}: {result.stderr}"
    assert (
        f":assumed-role/{'photos-reader' if scenario == 'photos' else 'foo'}/{SESSION}"
        in cli(allowed[0]).stdout
    )
    result = cli(denied[0])
    assert result.returncode != 0
    assert "(AccessDenied)" in result.stderr


def test_aws_port_fixes_the_local_aws_port_and_ctrl_c_stops_both(tmp_path: Path) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    with sandbox(tmp_path, "--aws-port", str(port)) as box:
        assert box.aws == f"http://127.0.0.1:{port}"
        assert box.proc.stop(signal.SIGINT) == 0
    assert any(line.endswith("imds_proxy.daemon: stopping") for line in box.proc.stderr)
    with socket.socket() as s, pytest.raises(ConnectionRefusedError):
        s.connect(("127.0.0.1", port))


def one_line_error(result: subprocess.CompletedProcess[str]) -> str:
    assert result.returncode == 2
    assert "Traceback" not in result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    return lines[0]


def test_a_broken_scenario_file_is_one_line_naming_the_file_and_key(tmp_path: Path) -> None:
    file = tmp_path / "mine.toml"
    file.write_text('description = "d"\n[serve]\nrole = "r"\n[roles.r]\ntrust = "{"\n')
    line = one_line_error(run(["sandbox", "--scenario", str(file)], isolated_env(tmp_path)))
    assert line.startswith(f"imds-proxy: scenario error: {file}: roles.r.trust: is not valid JSON")


def test_an_unknown_scenario_or_variant_lists_the_choices(tmp_path: Path) -> None:
    line = one_line_error(run(["sandbox", "--scenario", "fotos"], isolated_env(tmp_path)))
    assert "use one of: photos, cross-account, untrusted" in line
    line = one_line_error(run(["sandbox", "--variant", "x"], isolated_env(tmp_path)))
    assert "there is no variant 'x'" in line


def test_a_served_lifetime_out_of_range_names_the_range(tmp_path: Path) -> None:
    line = one_line_error(run(["sandbox", "--served-lifetime", "1"], isolated_env(tmp_path)))
    assert "served_lifetime: 1 is out of range; give seconds from 4 to 3600" in line


def test_list_scenarios_names_each_with_its_variants(tmp_path: Path) -> None:
    result = run(["sandbox", "--list-scenarios"], isolated_env(tmp_path))
    assert result.returncode == 0
    names = [line for line in result.stdout.splitlines() if not line.startswith(" ")]
    assert names == ["photos (default)", "cross-account", "untrusted"]
    assert "    --variant caller-lacks-permission: " in result.stdout


async def test_every_role_keeps_its_own_source_when_watched() -> None:
    """cli.sandbox wrapped every role's source into the first one: two roles got one role's keys."""
    from imds_proxy.sandbox.local_aws import watched_sources

    from fakes import FakeClock, FakeSource

    clock = FakeClock()
    sources = {
        "one": FakeSource(clock, key_prefix="ASIAONE_"),
        "two": FakeSource(clock, key_prefix="ASIATWO_"),
    }
    watched = watched_sources(sources, "local AWS as someone", timedelta(seconds=60))
    assert [w.source.source for w in watched.values()] == list(sources.values())  # type: ignore[attr-defined]
    assert (await watched["two"].fetch()).access_key_id.startswith("ASIATWO_")
    assert (await watched["one"].fetch()).access_key_id.startswith("ASIAONE_")
