"""A newcomer's friction (issue 11, point 6), each as the newcomer met it: a real process."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from conftest import StsRequests
from procs import daemon, isolated_env, run

SOURCE_KEYS = {"AWS_ACCESS_KEY_ID": "AKIAIOSFODNN7EXAMPLE", "AWS_SECRET_ACCESS_KEY": "example-secret-key"}


def test_unknown_flag_prints_the_sub_commands_usage(tmp_path: Path) -> None:
    result = run(["serve", "--rolearn", "X"], isolated_env(tmp_path))
    assert result.returncode == 2
    assert result.stderr.startswith("usage: imds-proxy serve")
    assert "unrecognized arguments: --rolearn X" in result.stderr


def test_env_into_a_closed_pipe_ends_quietly(tmp_path: Path) -> None:
    read, write = os.pipe()
    os.close(read)  # `| head -3` that has already gone
    env = isolated_env(tmp_path, {"IMDS_PROXY_ROLE_ARN": "arn:aws:iam::123456789012:role/dev"})
    proc = subprocess.run(
        [sys.executable, "-m", "imds_proxy", "env", "--shell", "fish"],
        stdout=write, stderr=subprocess.PIPE, text=True, env=env, timeout=30,
    )  # fmt: skip
    os.close(write)
    assert "Traceback" not in proc.stderr and "BrokenPipe" not in proc.stderr, proc.stderr
    assert proc.returncode == 141


def test_env_without_a_config_names_the_config_not_role_arn(tmp_path: Path) -> None:
    for command in (["env"], ["healthcheck"]):
        result = run(command, isolated_env(tmp_path))
        assert result.returncode == 2
        assert "--config" in result.stderr and "--role-arn" not in result.stderr, result.stderr


def test_listen_on_a_name_says_to_write_an_address(tmp_path: Path) -> None:
    args = ["serve", "--role-arn", "arn:aws:iam::123456789012:role/dev", "--listen", "example.com:18169"]
    result = run(args, isolated_env(tmp_path))
    assert result.returncode == 2  # refused before anything resolves or binds
    assert "is a name, not an IP address" in result.stderr and "another port" not in result.stderr


def test_sandbox_on_a_busy_aws_port_exits_1_in_one_line(tmp_path: Path) -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        aws_port = ["--aws-port", str(port)]
        for args in (["sandbox", *aws_port], ["exec", "--sandbox", *aws_port, "--", "true"]):
            result = run(args, isolated_env(tmp_path), timeout=30)
            assert result.returncode == 1
            lines = result.stderr.strip().splitlines()
            assert len(lines) == 1 and "pick another --aws-port" in lines[0], result.stderr


def test_sandbox_summary_is_json_under_log_format_json(tmp_path: Path) -> None:
    args = ["sandbox", "--listen", "127.0.0.1:0", "--admin-listen", "off", "--log-format", "json"]
    with daemon(args, isolated_env(tmp_path)) as d:
        d.wait_for(r'"event": "sandbox_ready"')
        assert d.stop() == 0
    for line in d.stderr:
        json.loads(line)  # every stderr line is a JSON object
    ready = next(json.loads(line) for line in d.stderr if "sandbox_ready" in line)
    assert any("aws sts get-caller-identity" in line for line in ready["summary"])


def _summary_for(path: str) -> str:
    from imds_proxy.sandbox import summary
    from imds_proxy.sandbox.local_aws import World
    from imds_proxy.sandbox.scenarios import file as scenario_file

    world = World(scenario_file.load("photos"), "arn:aws:iam::123456789012:user/imds-proxy-ec2", ("k", "s"))
    version = summary.cli_version(path)
    imds, aws = "http://127.0.0.1:8169/", "http://127.0.0.1:5000"
    return summary.summary(world, imds, aws, "me", None, None, version)


def test_sandbox_try_lines_pass_endpoint_url_for_debians_cli_v2() -> None:
    from test_cli_v2 import require_cli_v2

    require_cli_v2()  # /usr/bin/aws: Debian 12's 2.9, which ignores AWS_ENDPOINT_URL
    text = _summary_for("/usr/bin")
    assert "the AWS CLI on PATH (2." in text
    assert "  allowed   aws --endpoint-url http://127.0.0.1:5000 s3 ls s3://photos" in text
    assert "aws --endpoint-url http://127.0.0.1:5000 sts get-caller-identity" in text


def test_sandbox_try_lines_stay_short_for_a_cli_that_reads_aws_endpoint_url() -> None:
    venv_bin = str(Path(sys.executable).parent)  # the venv's AWS CLI v1 (awscli>=1.32)
    text = _summary_for(venv_bin)
    assert "--endpoint-url" not in text
    assert "  allowed   aws s3 ls s3://photos" in text


def test_sandbox_try_lines_pass_endpoint_url_when_no_cli_is_found(tmp_path: Path) -> None:
    text = _summary_for(str(tmp_path))
    assert "no AWS CLI version found on PATH" in text and "aws --endpoint-url " in text


def test_first_make_run_says_on_stderr_that_it_installs_before_the_pip_step(tmp_path: Path) -> None:
    # A venv that cannot be made (PYTHON=false) stops make right after the first install step.
    root = Path(__file__).parent.parent
    result = subprocess.run(
        ["make", "-s", "-C", str(root), "run", f"VENV={tmp_path / 'venv'}", "PYTHON=false"],
        capture_output=True, text=True, timeout=60, stdin=subprocess.DEVNULL,
    )  # fmt: skip
    assert result.returncode != 0
    assert result.stdout == ""  # `make -s run > sandbox.env` keeps only the export lines
    assert result.stderr.startswith("imds-proxy: installing into "), result.stderr


def test_every_config_error_is_reported_at_once_one_line_each(tmp_path: Path) -> None:
    file = tmp_path / "imds-proxy.toml"
    role = 'role_arn = "arn:aws:iam::123456789012:role/dev"\n'
    file.write_text(role + 'listen = ["nonsense"]\nduration = 10\nlog_format = "xml"\n')
    result = run(["serve", "--config", str(file)], isolated_env(tmp_path))
    assert result.returncode == 2
    lines = result.stderr.splitlines()
    assert [line.split(":")[2].strip() for line in lines] == ["duration", "listen", "log_format"], lines
    assert all(line.startswith("imds-proxy: config error: ") and "; " in line for line in lines), lines


def test_serve_on_a_busy_listen_port_exits_1_before_calling_sts(
    tmp_path: Path, local_aws: Any, sts_requests: StsRequests
) -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        args = ["serve", "--role-arn", local_aws.role_arn, "--sts-endpoint-url", local_aws.url]
        args += ["--region", "us-east-1", "--listen", f"127.0.0.1:{port}", "--admin-listen", "off"]
        started = time.monotonic()
        result = run(args, isolated_env(tmp_path, SOURCE_KEYS))
        took = time.monotonic() - started
    assert result.returncode == 1
    errors = [line for line in result.stderr.splitlines() if line.startswith("imds-proxy:")]
    assert len(errors) == 1 and f"127.0.0.1:{port}" in errors[0], result.stderr
    assert "AssumeRole" not in result.stderr and sts_requests("AssumeRole") == []
    assert took < 5, took  # the interpreter and its imports (0.4 s here); nothing waits for STS


def test_sandbox_on_a_busy_listen_port_exits_1_before_building_the_scenario(tmp_path: Path) -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        result = run(["sandbox", "--listen", f"127.0.0.1:{port}"], isolated_env(tmp_path), timeout=30)
    assert result.returncode == 1
    lines = result.stderr.strip().splitlines()  # nothing of the local AWS: it never started
    assert len(lines) == 1 and f"cannot listen on 127.0.0.1:{port}" in lines[0], result.stderr
