"""As a user runs it: `serve --profile` from an existing ~/.aws/config, and an MFA role that
starts waiting and works after `imds-proxy mfa` — real processes, boto3 as the client."""

from __future__ import annotations

import socket
import subprocess
import sys
from pathlib import Path
from typing import Any

from conftest import StsRequests
from procs import daemon, imds_credentials, isolated_env, run

BASE_KEY = "AKIAIMDSPROXYBASE002"
CODE = "384615"  # not a substring of moto's account id


def write_aws_config(tmp_path: Path, local_aws: Any, extra: str = "") -> dict[str, str]:
    """An existing ~/.aws/config with a role profile; the environment the user runs in."""
    aws = tmp_path / ".aws"
    aws.mkdir()
    (aws / "config").write_text(
        f"[profile base]\naws_access_key_id = {BASE_KEY}\naws_secret_access_key = base-secret\n\n"
        "[profile dev]\nrole_arn = arn:aws:iam::123456789012:role/dev\nsource_profile = base\n"
        "role_session_name = alice-laptop\nregion = us-east-1\nservices = local\n\n"
        f"[services local]\nsts =\n  endpoint_url = {local_aws.url}\n\n" + extra
    )
    return isolated_env(
        tmp_path,
        {
            "AWS_CONFIG_FILE": str(aws / "config"),
            "AWS_SHARED_CREDENTIALS_FILE": str(aws / "credentials"),
            "AWS_EC2_METADATA_DISABLED": "true",  # our own source chain must not probe IMDS
        },
    )


def boto3_caller(tmp_path: Path, imds_url: str, local_aws: Any) -> subprocess.CompletedProcess[str]:
    """An unmodified boto3 that finds credentials only through our IMDS endpoint."""
    code = "import boto3; print(boto3.client('sts').get_caller_identity()['Arn'])"
    env = isolated_env(
        tmp_path / "client",
        {
            "AWS_EC2_METADATA_SERVICE_ENDPOINT": imds_url,
            "AWS_ENDPOINT_URL": local_aws.url,
            "AWS_DEFAULT_REGION": "us-east-1",
        },
    )
    return subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=60)


def imds_proxy(args: list[str], env: dict[str, str], stdin: str = "") -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "imds_proxy", *args],
        env=env,
        input=stdin,
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_serve_profile_dev_gives_boto3_the_role(tmp_path: Path, local_aws: Any) -> None:
    env = write_aws_config(tmp_path, local_aws)
    with daemon(["serve", "--profile", "dev", "--listen", "127.0.0.1:0"], env) as d:
        url = d.wait_for(r"serving IMDS for role dev on (http://\S+/)").group(1)
        out = boto3_caller(tmp_path, url, local_aws)
        assert out.returncode == 0, out.stderr
        assert out.stdout.strip() == "arn:aws:sts::123456789012:assumed-role/dev/alice-laptop"
        roles = imds_proxy(["roles"], env)
        assert roles.returncode == 0, roles.stderr
        assert "profile dev <- profile base" in roles.stdout and " ok " in roles.stdout
        assert d.stop() == 0


def test_mfa_role_starts_waiting_and_works_after_imds_proxy_mfa(
    tmp_path: Path, local_aws: Any, sts_requests: StsRequests
) -> None:
    env = write_aws_config(
        tmp_path,
        local_aws,
        "[profile admin]\nrole_arn = arn:aws:iam::123456789012:role/admin\nsource_profile = base\n"
        "mfa_serial = arn:aws:iam::123456789012:mfa/alice\nservices = local\n",
    )
    with daemon(["serve", "--profile", "admin", "--listen", "127.0.0.1:0"], env) as d:
        # Start-up does not wait for a code: it serves EC2's error document meanwhile.
        url = d.wait_for(r"serving IMDS for role admin on (http://\S+/)").group(1)
        doc = imds_credentials(url, "admin")
        assert doc["Code"] == "MfaRequired" and "run `imds-proxy mfa --role admin`" in doc["Message"]
        assert "waiting for MFA" in imds_proxy(["roles"], env).stdout

        bad = imds_proxy(["mfa", "--role", "admin"], env, stdin="12ab\n")
        assert bad.returncode == 1 and bad.stderr.strip().splitlines()[-1].startswith("imds-proxy: ")
        assert "six digits" in bad.stderr and "Traceback" not in bad.stderr
        with socket.socket(socket.AF_UNIX) as s:  # garbage on the control socket
            s.connect(str(tmp_path / "run" / "imds-proxy" / "control.sock"))
            s.sendall(b"\x00garbage\n")

        good = imds_proxy(["mfa"], env, stdin=f"{CODE}\n")  # the only MFA role: no --role needed
        assert good.returncode == 0, good.stderr
        assert "role admin: credentials valid until" in good.stdout
        assert "MFA session for arn:aws:iam::123456789012:mfa/alice valid until" in good.stdout

        out = boto3_caller(tmp_path, url, local_aws)
        assert out.returncode == 0, out.stderr
        assert out.stdout.strip().startswith("arn:aws:sts::123456789012:assumed-role/admin/")
        assert "11h59m left" in imds_proxy(["roles"], env).stdout
        assert d.stop() == 0
    [opened] = sts_requests("GetSessionToken")
    assert (opened["SerialNumber"], opened["TokenCode"], opened["_signer"]) == (
        "arn:aws:iam::123456789012:mfa/alice",
        CODE,
        BASE_KEY,
    )
    [assumed] = sts_requests("AssumeRole")
    assert assumed["_signer"] not in ("", BASE_KEY)  # signed with the MFA session's keys
    assert CODE not in "\n".join(d.stderr)  # codes never reach a log


def test_mfa_without_a_daemon_is_one_line(tmp_path: Path) -> None:
    result = run(["mfa", "--role", "admin"], isolated_env(tmp_path))
    assert result.returncode == 1
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("imds-proxy: no imds-proxy daemon is listening")
