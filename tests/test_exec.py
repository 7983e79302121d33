"""`imds-proxy exec` as a user runs it: the child gets the role through a private container
endpoint, inherited AWS keys and profiles cannot win, exit codes and signals pass through."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

from procs import daemon, isolated_env, run

ASSUMED = "assumed-role/imds-proxy-sandbox/"
SOURCE_KEYS = {"AWS_ACCESS_KEY_ID": "AKIAIOSFODNN7EXAMPLE", "AWS_SECRET_ACCESS_KEY": "example-secret-key"}
#: The child: who am I to STS, and which AWS_* variables do I see (values only for URLs).
WHOAMI = (
    "import boto3, json, os\n"
    "arn = boto3.client('sts', region_name='us-east-1').get_caller_identity()['Arn']\n"
    "env = {k: (v if k.endswith(('URI', 'ENDPOINT')) else '...') for k, v in os.environ.items()"
    " if k.startswith('AWS_')}\n"
    "print(json.dumps({'arn': arn, 'env': env}))\n"
)


def exec_env(home: Path, local_aws: Any, **extra: str) -> dict[str, str]:
    """Our own STS credentials in the environment (what exec must not pass on), the child's
    AWS calls to the local AWS, and no probing of real IMDS."""
    values = {
        **SOURCE_KEYS,
        "AWS_ENDPOINT_URL": local_aws.url,
        "AWS_EC2_METADATA_DISABLED": "true",
        **extra,
    }
    return isolated_env(home, values)


def exec_args(local_aws: Any, *command: str) -> list[str]:
    role = ["--role-arn", local_aws.role_arn, "--sts-endpoint-url", local_aws.url, "--region", "us-east-1"]
    return ["exec", *role, "--", *command]


def profile_file(home: Path, section: str) -> Path:
    path = home / "credentials"
    path.write_text(f"[{section}]\naws_access_key_id = AKIAIOSFODNN7EXAMPLE\naws_secret_access_key = x\n")
    return path


def test_child_gets_the_role_and_not_the_inherited_keys(tmp_path: Path, local_aws: Any) -> None:
    creds_file = profile_file(tmp_path, "src")
    env = exec_env(
        tmp_path,
        local_aws,
        AWS_SESSION_TOKEN="inherited-session-token",
        AWS_PROFILE="src",
        AWS_SHARED_CREDENTIALS_FILE=str(creds_file),
    )
    result = run(exec_args(local_aws, sys.executable, "-c", WHOAMI), env)
    assert result.returncode == 0, result.stderr
    out = json.loads(result.stdout)
    assert ASSUMED in out["arn"]
    seen = set(out["env"])
    assert not seen & {"AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_PROFILE"}
    assert out["env"]["AWS_CONTAINER_CREDENTIALS_FULL_URI"].startswith("http://127.0.0.1:")
    assert out["env"]["AWS_CONTAINER_CREDENTIALS_FULL_URI"].endswith("/v1/credentials")
    assert out["env"]["AWS_EC2_METADATA_SERVICE_ENDPOINT"].startswith("http://127.0.0.1:")
    assert "AWS_CONTAINER_AUTHORIZATION_TOKEN" in seen
    assert result.stderr == ""  # quiet by default: the terminal belongs to the command


def test_container_variables_that_would_win_are_removed(tmp_path: Path, local_aws: Any) -> None:
    """Most SDKs prefer RELATIVE_URI to FULL_URI, and a token file to the token: an inherited
    one of either would send the child elsewhere. Printing the environment is enough here
    (no SDK: an inherited RELATIVE_URI points at 169.254.170.2)."""
    env = exec_env(
        tmp_path,
        local_aws,
        AWS_CONTAINER_CREDENTIALS_RELATIVE_URI="/v2/credentials/inherited",
        AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE=str(tmp_path / "inherited-token"),
        AWS_WEB_IDENTITY_TOKEN_FILE=str(tmp_path / "web-identity"),
        AWS_DEFAULT_PROFILE="src",  # exec itself may use it for STS: it must exist
        AWS_SHARED_CREDENTIALS_FILE=str(profile_file(tmp_path, "src")),
    )
    code = "import json, os; print(json.dumps(sorted(k for k in os.environ if k.startswith('AWS_'))))"
    result = run(exec_args(local_aws, sys.executable, "-c", code), env)
    assert result.returncode == 0, result.stderr
    seen = set(json.loads(result.stdout))
    assert not seen & {
        "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI",
        "AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE",
        "AWS_WEB_IDENTITY_TOKEN_FILE",
        "AWS_DEFAULT_PROFILE",
    }
    assert "AWS_ENDPOINT_URL" in seen  # unrelated variables pass through


def test_exit_code_passes_through(tmp_path: Path, local_aws: Any) -> None:
    result = run(
        exec_args(local_aws, sys.executable, "-c", "import sys; sys.exit(7)"), exec_env(tmp_path, local_aws)
    )
    assert result.returncode == 7


def test_unknown_command_exits_127_with_one_line(tmp_path: Path, local_aws: Any) -> None:
    result = run(exec_args(local_aws, "no-such-command-imds-proxy"), exec_env(tmp_path, local_aws))
    assert result.returncode == 127
    assert result.stderr.strip() == "imds-proxy: cannot run no-such-command-imds-proxy: command not found"


def test_sigterm_reaches_the_child_and_its_exit_code_comes_back(tmp_path: Path, local_aws: Any) -> None:
    child = (
        "import signal, sys, time\n"
        "def bye(*_):\n    print('child got SIGTERM', flush=True); sys.exit(42)\n"
        "signal.signal(signal.SIGTERM, bye)\nprint('child ready', flush=True)\ntime.sleep(60)\n"
    )
    with daemon(exec_args(local_aws, sys.executable, "-c", child), exec_env(tmp_path, local_aws)) as d:
        d.wait_for("child ready")
        assert d.stop(signal.SIGTERM) == 42
        d.wait_for("child got SIGTERM", timeout=5)


def test_child_killed_by_a_signal_exits_128_plus_the_signal(tmp_path: Path, local_aws: Any) -> None:
    child = "import os, signal; print('child ready', flush=True); os.kill(os.getpid(), signal.SIGKILL)"
    result = run(exec_args(local_aws, sys.executable, "-c", child), exec_env(tmp_path, local_aws))
    assert result.returncode == 128 + signal.SIGKILL


def test_without_credentials_the_command_does_not_run(tmp_path: Path) -> None:
    marker = tmp_path / "ran"
    env = isolated_env(tmp_path, {"AWS_EC2_METADATA_DISABLED": "true"})
    args = ["exec", "--role-arn", "arn:aws:iam::123456789012:role/x", "--", "touch", str(marker)]
    result = run(args, env)
    assert result.returncode == 1
    assert "no credentials to call STS with" in result.stderr and "Traceback" not in result.stderr
    assert not marker.exists()


def test_without_a_command_exits_2(tmp_path: Path) -> None:
    result = run(["exec", "--role-arn", "arn:aws:iam::123456789012:role/x"], isolated_env(tmp_path))
    assert result.returncode == 2
    assert "COMMAND" in result.stderr


def test_role_picks_a_configured_role(tmp_path: Path, local_aws: Any) -> None:
    file = tmp_path / "config.toml"
    file.write_text(
        f'sts_endpoint_url = "{local_aws.url}"\nregion = "us-east-1"\n'
        f'[roles.first]\nrole_arn = "{local_aws.role_arn}"\nrole_session_name = "first"\n'
        f'[roles.second]\nrole_arn = "{local_aws.role_arn}"\nrole_session_name = "second"\n'
    )
    args = ["exec", "--config", str(file), "--role", "second", "--", sys.executable, "-c", WHOAMI]
    result = run(args, exec_env(tmp_path, local_aws))
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["arn"].endswith(f"{ASSUMED}second")
    bad = run(["exec", "--config", str(file), "--role", "third", "--", "true"], exec_env(tmp_path, local_aws))
    assert bad.returncode == 2 and "first, second" in bad.stderr


def test_a_config_whose_role_comes_from_a_profile(tmp_path: Path, local_aws: Any) -> None:
    aws_config = tmp_path / "aws-config"
    aws_config.write_text(f"[profile dev]\nrole_arn = {local_aws.role_arn}\nsource_profile = src\n")
    file = tmp_path / "config.toml"
    file.write_text(f'sts_endpoint_url = "{local_aws.url}"\n[roles.dev]\nprofile = "dev"\n')
    env = exec_env(
        tmp_path,
        local_aws,
        AWS_CONFIG_FILE=str(aws_config),
        AWS_SHARED_CREDENTIALS_FILE=str(profile_file(tmp_path, "src")),
    )
    result = run(["exec", "--config", str(file), "--", sys.executable, "-c", WHOAMI], env)
    assert result.returncode == 0, result.stderr
    assert ASSUMED in json.loads(result.stdout)["arn"]


def test_a_default_profile_with_keys_is_warned_about(tmp_path: Path, local_aws: Any) -> None:
    env = exec_env(tmp_path, local_aws, AWS_SHARED_CREDENTIALS_FILE=str(profile_file(tmp_path, "default")))
    result = run(exec_args(local_aws, "true"), env)
    assert result.returncode == 0
    assert "warning: the default profile in" in result.stderr


def sandbox_exec(tmp_path: Path, *command: str) -> subprocess.CompletedProcess[str]:
    bin_dir = str(Path(sys.executable).parent)  # the AWS CLI v1 in the test venv
    env = isolated_env(
        tmp_path,
        {
            **SOURCE_KEYS,
            "AWS_EC2_METADATA_DISABLED": "true",
            "PATH": bin_dir + os.pathsep + os.environ["PATH"],
        },
    )
    return run(["exec", "--sandbox", "--", *command], env)


def test_sandbox_aws_cli_gets_the_assumed_role(tmp_path: Path) -> None:
    """The issue's acceptance check: `imds-proxy exec --sandbox -- aws sts get-caller-identity`,
    on the default scenario (photos) with IAM enforced, as `sandbox` runs it."""
    result = sandbox_exec(tmp_path, "aws", "sts", "get-caller-identity", "--output", "json")
    assert result.returncode == 0, result.stderr
    assert "assumed-role/photos-reader/" in json.loads(result.stdout)["Arn"]


def test_sandbox_child_is_bound_by_the_scenarios_iam(tmp_path: Path) -> None:
    """The child may read the photos bucket and is denied writing to it, as on the instance."""
    code = (
        "import boto3, botocore.exceptions as e\n"
        "s3 = boto3.client('s3')\n"
        "print(len(s3.list_objects_v2(Bucket='photos')['Contents']) > 0)\n"
        "try:\n"
        "    s3.put_object(Bucket='photos', Key='dog.jpg', Body=b'x')\n"
        "except e.ClientError as err:\n"
        "    print(err.response['Error']['Code'])\n"
    )
    result = sandbox_exec(tmp_path, sys.executable, "-c", code)
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["True", "AccessDenied"]


def test_exec_profile_gives_the_child_the_profiles_region(tmp_path: Path, local_aws: Any) -> None:
    aws_config = tmp_path / "aws-config"
    aws_config.write_text(
        f"[profile dev]\nrole_arn = {local_aws.role_arn}\nsource_profile = src\nregion = eu-west-1\n"
    )
    env = exec_env(
        tmp_path,
        local_aws,
        AWS_CONFIG_FILE=str(aws_config),
        AWS_SHARED_CREDENTIALS_FILE=str(profile_file(tmp_path, "src")),
    )
    child = "import os; print(os.environ.get('AWS_REGION'), os.environ.get('AWS_DEFAULT_REGION'))"
    role = ["--profile", "dev", "--sts-endpoint-url", local_aws.url]
    args = ["exec", *role, "--", sys.executable, "-c", child]
    result = run(args, env)
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["eu-west-1", "eu-west-1"]
