"""As a user runs it: `serve --profile` from an existing ~/.aws/config — real processes,
boto3 as the client."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

from conftest import TOKEN, TTL
from procs import daemon, isolated_env

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


def imds_document(url: str, role: str) -> dict[str, Any]:
    import urllib.request

    put = urllib.request.Request(f"{url}latest/api/token", method="PUT", headers={TTL: "60"})
    with urllib.request.urlopen(put, timeout=10) as r:
        token = r.read().decode()
    get = urllib.request.Request(
        f"{url}latest/meta-data/iam/security-credentials/{role}", headers={TOKEN: token}
    )
    with urllib.request.urlopen(get, timeout=10) as r:
        doc: dict[str, Any] = json.loads(r.read())
    return doc


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
        assert d.stop() == 0
