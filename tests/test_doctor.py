"""`imds-proxy doctor`: a verdict line per step. Against the sandbox's local AWS (moto, IAM
enforced) for every denial moto can model, as a real process; at the boto3 boundary (FakeSts,
FakeIam) for what moto cannot: iam:SimulatePrincipalPolicy, MaxSessionDuration at STS, chaining."""

from __future__ import annotations

import socket
from pathlib import Path
from typing import Any

import pytest
from botocore.exceptions import ClientError

from imds_proxy.cli import doctor

from conftest import ROLE_ARN, make_config
from fakes import FakeClock, FakeIam, FakeSts
from procs import daemon, isolated_env, run

SCENARIOS = Path(__file__).parent / "scenarios"
SAME_ACCOUNT = str(SCENARIOS / "doctor-same-account.toml")
CAROL = "arn:aws:iam::123456789012:user/Carol"
APP = "arn:aws:iam::123456789012:role/app"


def closed_port() -> int:
    """A loopback port nothing listens on (bound, then released)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def no_daemon_env(home: Path, **extra: str) -> dict[str, str]:
    """An isolated shell whose SDKs would ask IMDS on a closed loopback port."""
    url = f"http://127.0.0.1:{closed_port()}/"
    return isolated_env(home, {"AWS_EC2_METADATA_SERVICE_ENDPOINT": url, **extra})


def doctor_lines(args: list[str], env: dict[str, str]) -> tuple[int, list[str]]:
    result = run(["doctor", *args], env, timeout=60)
    assert "Traceback" not in result.stderr, result.stderr
    return result.returncode, result.stdout.splitlines()


def line(lines: list[str], start: str) -> str:
    found = [x for x in lines if x.startswith(start)]
    assert len(found) == 1, "\n".join(lines)
    return found[0]


# The local AWS: each denial it can model, and the explanation doctor prints.


def test_healthy_sandbox_role_and_daemon_pass_every_step(tmp_path: Path) -> None:
    args = ["sandbox", "--listen", "127.0.0.1:0", "--admin-listen", "off"]
    with daemon(args, isolated_env(tmp_path)) as d:
        url = d.wait_for(r"export AWS_EC2_METADATA_SERVICE_ENDPOINT=(\S+)").group(1)
        env = isolated_env(tmp_path, {"AWS_EC2_METADATA_SERVICE_ENDPOINT": url})
        code, lines = doctor_lines(["--sandbox"], env)
    assert code == 0, "\n".join(lines)
    assert all(x.startswith("ok   ") for x in lines), "\n".join(lines)
    assert "arn:aws:iam::123456789012:user/imds-proxy-ec2" in line(lines, "ok   own credentials")
    assert "role/photos-reader" in line(lines, "ok   AssumeRole")
    assert url in line(lines, "ok   daemon") and "answers IMDSv2" in line(lines, "ok   daemon")


def test_caller_without_sts_assume_role_is_named_as_the_refusing_side(tmp_path: Path) -> None:
    args = ["--sandbox", "--scenario", "cross-account", "--variant", "caller-lacks-permission"]
    code, lines = doctor_lines(args, no_daemon_env(tmp_path))
    assert code == 1
    denied = line(lines, "FAIL AssumeRole arn:aws:iam::444455556666:role/foo")
    assert "arn:aws:iam::111122223333:user/Bob) is not allowed sts:AssumeRole" in denied
    assert "add it to the caller's permissions policy" in denied
    # The role is in another account: its trust policy cannot be read, and doctor says so.
    assert "not readable from account 111122223333" in line(lines, "skip trust policy")


def test_trust_naming_someone_else_is_named_as_the_refusing_side(tmp_path: Path) -> None:
    args = ["--sandbox", "--scenario", "cross-account", "--variant", "trust-names-someone-else"]
    code, lines = doctor_lines(args, no_daemon_env(tmp_path))
    assert code == 1
    denied = line(lines, "FAIL AssumeRole")
    assert "trust policy of arn:aws:iam::444455556666:role/foo does not trust " in denied
    assert "arn:aws:iam::111122223333:user/Bob: add it as a principal" in denied


def test_instance_profile_role_that_does_not_trust_ec2(tmp_path: Path) -> None:
    code, lines = doctor_lines(["--sandbox", "--scenario", "untrusted"], no_daemon_env(tmp_path))
    assert code == 1
    assert "does not trust ec2.amazonaws.com" in line(lines, "FAIL AssumeRole")
    assert "iam:GetRole: AccessDenied" in line(lines, "skip trust policy")


@pytest.mark.parametrize(
    ("variant", "extra", "expected"),
    [
        ("trust-names-alice", [], f"FAIL trust policy of {APP} does not name {CAROL} or its account "
         "(it trusts arn:aws:iam::123456789012:user/Alice)"),
        ("needs-external-id", [], f"FAIL trust policy of {APP} requires an ExternalId"),
        ("needs-external-id", ["--external-id", "wrong-id"], f"FAIL trust policy of {APP} expects another "
         "ExternalId"),
        ("needs-mfa", [], f"FAIL trust policy of {APP} requires MFA (aws:MultiFactorAuthPresent)"),
    ],
    ids=["trust-names-alice", "external-id-missing", "external-id-wrong", "mfa"],
)  # fmt: skip
def test_a_readable_trust_policy_says_what_in_it_refuses(
    tmp_path: Path, variant: str, extra: list[str], expected: str
) -> None:
    args = ["--sandbox", "--scenario", SAME_ACCOUNT, "--variant", variant, *extra]
    code, lines = doctor_lines(args, no_daemon_env(tmp_path))
    assert code == 1
    assert line(lines, "FAIL AssumeRole").startswith(f"FAIL AssumeRole {APP}: ")
    assert any(x.startswith(expected) for x in lines), "\n".join(lines)


def test_duration_above_max_session_duration_fails_though_moto_issues_it(tmp_path: Path) -> None:
    # moto's AssumeRole ignores MaxSessionDuration; iam:GetRole tells doctor the role's maximum.
    args = ["--sandbox", "--scenario", SAME_ACCOUNT, "--duration", "7200"]
    code, lines = doctor_lines(args, no_daemon_env(tmp_path))
    assert code == 1
    assert line(lines, "ok   AssumeRole").startswith(f"ok   AssumeRole {APP}")
    assert "is above the MaxSessionDuration" in line(lines, "FAIL duration 7200 s") and "(3600 s)" in lines[2]


def test_unreachable_sts_fails_our_own_credentials_and_names_environment_keys(tmp_path: Path) -> None:
    key = "AKIAIOSFODNN7EXAMPLE"
    secret = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"
    env = no_daemon_env(tmp_path, AWS_ACCESS_KEY_ID=key, AWS_SECRET_ACCESS_KEY=secret)
    args = ["--role-arn", ROLE_ARN, "--sts-endpoint-url", f"http://127.0.0.1:{closed_port()}"]
    code, lines = doctor_lines(args, env)
    assert code == 1
    assert "cannot reach STS" in line(lines, "FAIL own credentials (default credential chain)")
    assert line(lines, "skip AssumeRole")
    assert "AWS_ACCESS_KEY_ID (key …MPLE)" in line(lines, "FAIL shadow: AWS_ACCESS_KEY_ID")
    assert key not in "\n".join(lines) and "wJalr" not in "\n".join(lines)


def test_doctor_without_a_role_is_a_config_error(tmp_path: Path) -> None:
    result = run(["doctor"], no_daemon_env(tmp_path))
    assert result.returncode == 2
    assert result.stderr.count("\n") == 1 and "config error: role_arn" in result.stderr


# The boto3 boundary: what moto cannot model.


def boundary(
    clock: FakeClock,
    capsys: pytest.CaptureFixture[str],
    tmp_path: Path,
    sts: FakeSts,
    iam: FakeIam,
    **cfg: Any,
) -> list[str]:
    doctor.run(make_config(**cfg), no_daemon_env(tmp_path), lambda _: sts, lambda _: iam, clock=clock)
    return capsys.readouterr().out.splitlines()


def refused(message: str) -> ClientError:
    return ClientError({"Error": {"Code": "AccessDenied", "Message": message}}, "AssumeRole")


#: AWS's wording across organizations: it names neither side.
ACROSS_ORGS = f"User: arn:aws:iam::123456789012:user/source is not authorized to perform: sts:AssumeRole on resource: {ROLE_ARN}"  # noqa: E501


@pytest.mark.parametrize(
    ("decision", "expected"),
    [
        ("implicitDeny", "FAIL no permissions policy of arn:aws:iam::123456789012:user/source allows"),
        ("explicitDeny", "FAIL a Deny in the permissions of arn:aws:iam::123456789012:user/source refuses"),
        ("allowed", "ok   permissions of arn:aws:iam::123456789012:user/source allow sts:AssumeRole"),
    ],
)  # fmt: skip
def test_simulated_permissions_say_whether_the_caller_side_refuses(
    clock: FakeClock, capsys: pytest.CaptureFixture[str], tmp_path: Path, decision: str, expected: str
) -> None:
    sts = FakeSts(clock)
    sts.fail_assume = refused(ACROSS_ORGS)
    iam = FakeIam(decision)
    lines = boundary(clock, capsys, tmp_path, sts, iam)
    refusal = line(lines, "FAIL AssumeRole")
    assert refusal.startswith(f"FAIL AssumeRole {ROLE_ARN} was refused: either the caller")
    assert any(x.startswith(expected) for x in lines), "\n".join(lines)
    assert ("SimulatePrincipalPolicy", {
        "PolicySourceArn": "arn:aws:iam::123456789012:user/source",
        "ActionNames": ["sts:AssumeRole"], "ResourceArns": [ROLE_ARN],
    }) in iam.calls  # fmt: skip


def test_a_role_session_caller_is_simulated_as_its_role(
    clock: FakeClock, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    sts = FakeSts(clock)
    sts.caller_arn = "arn:aws:sts::123456789012:assumed-role/ci/session-1"
    sts.fail_assume = refused(ACROSS_ORGS)
    iam = FakeIam("implicitDeny")
    boundary(clock, capsys, tmp_path, sts, iam)
    assert iam.calls[-1][1]["PolicySourceArn"] == "arn:aws:iam::123456789012:role/ci"


def test_trust_read_and_permissions_allowed_point_at_the_trust_policy(
    clock: FakeClock, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    sts = FakeSts(clock)
    sts.fail_assume = refused(ACROSS_ORGS)
    allow = {"Effect": "Allow", "Action": "sts:AssumeRole", "Principal": {"AWS": "999988887777"}}
    trust = {"Statement": [allow]}
    lines = boundary(clock, capsys, tmp_path, sts, FakeIam("allowed", {"AssumeRolePolicyDocument": trust}))
    assert "it trusts 999988887777" in line(lines, "FAIL trust policy")
    assert line(lines, "ok   permissions")


def test_sts_refusing_the_duration_and_get_role_maximum_both_say_so(
    clock: FakeClock, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    sts = FakeSts(clock)
    sts.fail_assume = ClientError(
        {"Error": {"Code": "ValidationError", "Message": "The requested DurationSeconds exceeds the "
                   "MaxSessionDuration set for this role."}}, "AssumeRole")  # fmt: skip
    role = {"AssumeRolePolicyDocument": {"Statement": []}, "MaxSessionDuration": 3600}
    lines = boundary(clock, capsys, tmp_path, sts, FakeIam(role=role), duration=7200)
    assert "above the MaxSessionDuration" in line(lines, "FAIL AssumeRole")
    assert "(3600 s)" in line(lines, "FAIL duration 7200 s")


def test_role_credentials_as_our_own_warn_of_the_one_hour_chaining_cap(
    clock: FakeClock, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    sts = FakeSts(clock)
    sts.caller_arn = "arn:aws:sts::123456789012:assumed-role/ci/session-1"
    lines = boundary(clock, capsys, tmp_path, sts, FakeIam(), duration=7200)
    assert line(lines, "ok   AssumeRole")
    assert "role chaining" in line(lines, "warn duration 7200 s") and "set duration = 3600" in lines[2]


# Shadows: everything in this shell's SDK chain that wins over IMDS, by variable and by file.


@pytest.mark.parametrize(
    "variable",
    [
        "AWS_ACCESS_KEY_ID",
        "AWS_SECRET_ACCESS_KEY",
        "AWS_SESSION_TOKEN",
        "AWS_PROFILE",
        "AWS_DEFAULT_PROFILE",
        "AWS_WEB_IDENTITY_TOKEN_FILE",
        "AWS_CONTAINER_CREDENTIALS_FULL_URI",
        "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI",
        "AWS_EC2_METADATA_DISABLED",
    ],
)
def test_each_shadowing_variable_is_named(tmp_path: Path, variable: str) -> None:
    value = "true" if variable == "AWS_EC2_METADATA_DISABLED" else "s3cr3t-or-name-0000"
    verdicts = doctor.shadow_verdicts(isolated_env(tmp_path, {variable: value}))
    assert [v.status for v in verdicts] == ["FAIL"]
    assert verdicts[0].text.startswith(f"shadow: {variable}")
    if variable in ("AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_ACCESS_KEY_ID"):
        assert value not in verdicts[0].text


@pytest.mark.parametrize(
    ("name", "text", "setting"),
    [
        ("credentials", "[default]\naws_access_key_id = AKIAEXAMPLE\n", "aws_access_key_id"),
        ("config", "[default]\nsso_session = corp\n", "sso_session"),
        ("config", "[profile default]\nsso_start_url = https://corp.awsapps.com/start\n", "sso_start_url"),
        ("config", "[default]\ncredential_process = pass aws\n", "credential_process"),
    ],
)
def test_each_shadowing_default_profile_setting_is_named_with_its_file(
    tmp_path: Path, name: str, text: str, setting: str
) -> None:
    path = tmp_path / name
    path.write_text(text)
    variable = "AWS_CONFIG_FILE" if name == "config" else "AWS_SHARED_CREDENTIALS_FILE"
    env = isolated_env(tmp_path, {variable: str(path)})
    verdicts = doctor.shadow_verdicts(env)
    assert [str(v) for v in verdicts] == [
        f"FAIL shadow: {path}: the default profile sets {setting}, which SDKs use before IMDS; remove it, or "
        "point AWS_SHARED_CREDENTIALS_FILE/AWS_CONFIG_FILE elsewhere"
    ]


def test_keys_in_a_named_profile_and_an_empty_shell_shadow_nothing(tmp_path: Path) -> None:
    (tmp_path / "credentials").write_text("[work]\naws_access_key_id = AKIAEXAMPLE\n")
    env = isolated_env(tmp_path, {"AWS_SHARED_CREDENTIALS_FILE": str(tmp_path / "credentials")})
    assert [v.status for v in doctor.shadow_verdicts(env)] == ["ok"]


def test_the_endpoint_sdks_use_comes_from_the_variable_or_the_mode() -> None:
    assert doctor.imds_endpoint({"AWS_EC2_METADATA_SERVICE_ENDPOINT": "http://127.0.0.1:8169"}) == (
        "http://127.0.0.1:8169/", "AWS_EC2_METADATA_SERVICE_ENDPOINT")
    assert doctor.imds_endpoint({})[0] == "http://169.254.169.254/"
    assert doctor.imds_endpoint({"AWS_EC2_METADATA_SERVICE_ENDPOINT_MODE": "IPv6"})[0] == "http://[fd00:ec2::254]/"
