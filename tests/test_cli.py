"""The command line as a user runs it: real processes, exit codes, one-line errors, signals."""

from __future__ import annotations

import json
import signal
import socket
import sys
from pathlib import Path
from typing import Any

import pytest

from fakes import ROLE_ARN
from procs import daemon, imds_credentials, isolated_env, run

SOURCE_KEYS = {"AWS_ACCESS_KEY_ID": "AKIAIOSFODNN7EXAMPLE", "AWS_SECRET_ACCESS_KEY": "example-secret-key"}


def one_line_error(stderr: str) -> str:
    lines = stderr.strip().splitlines()
    assert len(lines) == 1, stderr
    assert "Traceback" not in stderr
    assert lines[0].startswith("imds-proxy: ")
    return lines[0]


def test_python_m_and_version(tmp_path: Path) -> None:
    result = run(["--version"], isolated_env(tmp_path))
    assert result.returncode == 0
    assert result.stdout.startswith("imds-proxy ")


def test_serve_without_a_role_exits_2_naming_the_key(tmp_path: Path) -> None:
    result = run(["serve"], isolated_env(tmp_path))
    assert result.returncode == 2
    assert "role_arn" in one_line_error(result.stderr)
    assert "--role-arn" in result.stderr


def test_bad_value_exits_2_naming_the_key_and_the_fix(tmp_path: Path) -> None:
    result = run(["serve", "--role-arn", ROLE_ARN, "--duration", "60"], isolated_env(tmp_path))
    assert result.returncode == 2
    line = one_line_error(result.stderr)
    assert "duration" in line and "900 to 43200" in line


def test_bad_environment_value_exits_2(tmp_path: Path) -> None:
    env = isolated_env(tmp_path, {"IMDS_PROXY_ROLE_ARN": ROLE_ARN, "IMDS_PROXY_IMDSV1": "sometimes"})
    result = run(["serve"], env)
    assert result.returncode == 2
    assert "imdsv1" in one_line_error(result.stderr)


def test_broken_config_file_exits_2(tmp_path: Path) -> None:
    file = tmp_path / "c.toml"
    file.write_text("role_arn = [\n")
    result = run(["serve", "--config", str(file)], isolated_env(tmp_path))
    assert result.returncode == 2
    assert "not valid TOML" in one_line_error(result.stderr)


def test_serve_without_source_credentials_exits_1_saying_so(tmp_path: Path) -> None:
    # IMDS off for boto3's own chain: it must not probe 169.254.169.254 from a test.
    env = isolated_env(tmp_path, {"AWS_EC2_METADATA_DISABLED": "true"})
    result = run(["serve", "--role-arn", ROLE_ARN, "--listen", "127.0.0.1:0"], env)
    assert result.returncode == 1
    assert "no credentials to call STS with" in one_line_error(result.stderr)


def test_unknown_source_profile_exits_1_naming_it(tmp_path: Path) -> None:
    env = isolated_env(tmp_path, {"AWS_EC2_METADATA_DISABLED": "true"})
    result = run(
        ["serve", "--role-arn", ROLE_ARN, "--source-profile", "nosuch", "--listen", "127.0.0.1:0"], env
    )
    assert result.returncode == 1
    assert "'nosuch'" in result.stderr and "Traceback" not in result.stderr


def test_serve_runs_serves_and_stops_on_sigterm(tmp_path: Path, local_aws: Any) -> None:
    env = isolated_env(tmp_path, SOURCE_KEYS)
    args = ["serve", "--role-arn", local_aws.role_arn, "--sts-endpoint-url", local_aws.url]
    args += ["--region", "us-east-1", "--listen", "127.0.0.1:0", "--log-format", "json"]
    with daemon(args, env) as d:
        url = d.wait_for(r"serving IMDS for role imds-proxy-sandbox on (http://\S+/)").group(1)
        doc = imds_credentials(url)
        assert doc["Code"] == "Success" and doc["AccessKeyId"].startswith("ASIA")
        assert d.stop(signal.SIGTERM) == 0
    log = "\n".join(d.stderr)
    assert doc["SecretAccessKey"] not in log and doc["Token"] not in log
    records = [json.loads(line) for line in d.stderr]
    messages = [r["message"] for r in records]
    assert any(m.startswith("AssumeRole ") and doc["AccessKeyId"][-4:] in m for m in messages)
    assert any(m.startswith("served credentials") for m in messages)
    assert not any(doc["AccessKeyId"] in m for m in messages)


def test_port_in_use_exits_1_in_one_line(tmp_path: Path, local_aws: Any) -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        env = isolated_env(tmp_path, SOURCE_KEYS)
        args = ["serve", "--role-arn", local_aws.role_arn, "--sts-endpoint-url", local_aws.url]
        result = run([*args, "--listen", f"127.0.0.1:{port}"], env)
    assert result.returncode == 1
    errors = [line for line in result.stderr.splitlines() if line.startswith("imds-proxy:")]
    assert len(errors) == 1 and f"127.0.0.1:{port}" in errors[0] and "Traceback" not in result.stderr


def test_sandbox_exports_give_boto3_the_assumed_role(tmp_path: Path) -> None:
    with daemon(["sandbox", "--listen", "127.0.0.1:0"], isolated_env(tmp_path)) as d:
        d.wait_for(r"^export AWS_DEFAULT_REGION=")
        exports = dict(
            line.removeprefix("export ").split("=", 1) for line in d.stdout if line.startswith("export ")
        )
        assert exports["AWS_EC2_METADATA_SERVICE_ENDPOINT"].endswith("/")
        code = "import boto3, json; print(json.dumps(boto3.client('sts').get_caller_identity()['Arn']))"
        import subprocess

        out = subprocess.run(
            [sys.executable, "-c", code],
            env=isolated_env(tmp_path, exports),
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert out.returncode == 0, out.stderr
        assert json.loads(out.stdout).startswith("arn:aws:sts::123456789012:assumed-role/photos-reader/")
        assert d.stop(signal.SIGINT) == 0


def test_sandbox_export_lines_clear_what_would_keep_a_shell_from_our_imds(tmp_path: Path) -> None:
    """Sourced in a shell that disables IMDS (as one does for tools that must not probe it) or
    names a profile for the AWS CLI v1 (AWS_DEFAULT_PROFILE), the lines still give the role."""
    import subprocess

    with daemon(["sandbox", "--listen", "127.0.0.1:0"], isolated_env(tmp_path)) as d:
        d.wait_for(r"^export AWS_DEFAULT_REGION=")
        lines = tmp_path / "sandbox.env"
        lines.write_text("\n".join(line for line in d.stdout if line.startswith(("unset ", "export "))))
        code = "import boto3; print(boto3.client('sts').get_caller_identity()['Arn'])"
        inherited = {"AWS_EC2_METADATA_DISABLED": "true", "AWS_DEFAULT_PROFILE": "elsewhere"}
        out = subprocess.run(
            ["sh", "-c", f'. "{lines}" && "{sys.executable}" -c "{code}"'],
            env=isolated_env(tmp_path, inherited),
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert out.returncode == 0, out.stderr
        assert "assumed-role/photos-reader/" in out.stdout
        assert d.stop(signal.SIGINT) == 0


def test_sandbox_without_moto_says_how_to_install(tmp_path: Path) -> None:
    import subprocess

    code = (
        "import sys; sys.modules['moto'] = None; from imds_proxy.cli import main; sys.exit(main(['sandbox']))"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], env=isolated_env(tmp_path), capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 1
    assert "pip install 'imds-proxy[sandbox]'" in one_line_error(result.stderr)


@pytest.mark.parametrize("flag", ["--listen", "--availability-zone"])
def test_sandbox_validates_like_serve(tmp_path: Path, flag: str) -> None:
    result = run(["sandbox", flag, "nonsense"], isolated_env(tmp_path))
    assert result.returncode == 2
    one_line_error(result.stderr)


def test_each_listener_serves_its_own_role_over_ipv4_and_ipv6(tmp_path: Path, local_aws: Any) -> None:
    import socket as s

    notify = s.socket(s.AF_UNIX, s.SOCK_DGRAM)
    notify.bind(str(tmp_path / "notify"))
    notify.settimeout(30)
    file = tmp_path / "config.toml"
    file.write_text(
        f'sts_endpoint_url = "{local_aws.url}"\nregion = "us-east-1"\n'
        'listen = ["127.0.0.1:0=one", "[::1]:0=two"]\n'
        f'[roles.one]\nrole_arn = "{local_aws.role_arn}"\nrole_session_name = "first"\n'
        f'[roles.two]\nrole_arn = "{local_aws.role_arn}"\nrole_session_name = "second"\n'
    )
    env = isolated_env(tmp_path, {**SOURCE_KEYS, "NOTIFY_SOCKET": str(tmp_path / "notify")})
    with daemon(["serve", "--config", str(file)], env) as d:
        assert notify.recv(100) == b"READY=1"  # only after credentials and listeners are up
        one = d.wait_for(r"serving IMDS for role one on (http://\S+/)").group(1)
        two = d.wait_for(r"serving IMDS for role two on (http://\[::1\]:\d+/)").group(1)
        first, second = imds_credentials(one), imds_credentials(two)
        assert first["AccessKeyId"] != second["AccessKeyId"]  # one cache entry per role
        assert d.stop() == 0
    notify.close()


def test_sandbox_ignores_a_missing_aws_profile(tmp_path: Path) -> None:
    env = isolated_env(tmp_path, {"AWS_PROFILE": "nope"})
    with daemon(["sandbox", "--listen", "127.0.0.1:0"], env) as d:
        d.wait_for(r"^export AWS_EC2_METADATA_SERVICE_ENDPOINT=")
        assert d.stop(signal.SIGINT) == 0


@pytest.mark.parametrize(
    "args",
    [
        ["healthcheck", "--listen", "127.0.0.1:9", "--timeout", "0.2"],
        ["env", "--shell", "sh"],
    ],
    ids=["healthcheck", "env"],
)
def test_healthcheck_and_env_load_neither_boto3_nor_aiohttp(tmp_path: Path, args: list[str]) -> None:
    """Docker runs the health check every 30 s: it must not pay boto3's import (~0.3 s)."""
    import subprocess

    code = (
        "import sys\n"
        "from imds_proxy.cli import main\n"
        f"code = main({args!r})\n"
        "heavy = sorted(m for m in ('boto3', 'botocore', 'aiohttp', 'moto') if m in sys.modules)\n"
        "print('loaded:' + ','.join(heavy))\n"
    )
    env = isolated_env(tmp_path, {"IMDS_PROXY_ROLE_ARN": ROLE_ARN})
    done = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=30)
    assert done.stdout.strip().splitlines()[-1] == "loaded:", done.stdout + done.stderr


#: What `serve` never needs: the sandbox's scenario reader, moto, and boto3 (its STS clients are
#: botocore's own; boto3 would add ~2 MiB of modules).
SERVE_NEVER_LOADS = ("imds_proxy.sandbox.scenarios.file", "moto", "boto3")


def test_serve_loads_no_sandbox_module(tmp_path: Path) -> None:
    """The daemon's memory is mostly its imports: the parser and everything `serve` runs
    (its command module and the daemon) load nothing that only other commands use."""
    import subprocess

    code = (
        "import importlib, sys\n"
        "from imds_proxy.cli.parser import build_parser\n"
        "build_parser()\n"
        "for m in ('imds_proxy.cli.serve', 'imds_proxy.runtime.daemon'):\n"
        "    importlib.import_module(m)\n"
        f"print('loaded:' + ','.join(m for m in {SERVE_NEVER_LOADS!r} if m in sys.modules))\n"
    )
    env = isolated_env(tmp_path, {})
    done = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=30)
    assert done.stdout.strip().splitlines()[-1] == "loaded:", done.stdout + done.stderr
