"""The container channel's commands as a user runs them: `serve` with a token file, `env`
(what a shell needs, never a secret) and `healthcheck` (what Docker's HEALTHCHECK runs)."""

from __future__ import annotations

import asyncio
import socket
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from imds_proxy import cli
from imds_proxy.errors import AssumeRoleDenied
from imds_proxy.runtime import shellenv

from container_support import TOKEN, ServerFactory, now_clock, serve, two_roles
from fakes import ROLE_ARN
from procs import daemon, isolated_env


@pytest.fixture(autouse=True)
def _no_ambient_config(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in (
        "IMDS_PROXY_CONFIG",
        "IMDS_PROXY_LISTEN",
        "IMDS_PROXY_ROLE_ARN",
        "IMDS_PROXY_CONTAINER_TOKEN",
    ):
        monkeypatch.delenv(name, raising=False)


def config_file(tmp_path: Path, body: str) -> Path:
    path = tmp_path / "config.toml"
    path.write_text(f'role_arn = "{ROLE_ARN}"\n' + body)
    return path


def env_output(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    code = cli.main(["env", *args])
    out, err = capsys.readouterr()
    return code, out, err


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


# --- serve + env, end to end ---------------------------------------------------------------


def test_serve_env_and_a_shell_give_boto3_the_role(tmp_path: Path, local_aws: Any) -> None:
    """The README's workflow: serve generates the token file; `env --container` in a shell
    that holds other keys; boto3 in that shell is the role."""
    token_file = tmp_path / "token"
    file = tmp_path / "config.toml"
    file.write_text(
        f'role_arn = "{local_aws.role_arn}"\nsts_endpoint_url = "{local_aws.url}"\nregion = "us-east-1"\n'
        f'listen = ["127.0.0.1:{free_port()}"]\ncontainer_token_file = "{token_file}"\n'
    )
    own_keys = {"AWS_ACCESS_KEY_ID": "AKIAIOSFODNN7EXAMPLE", "AWS_SECRET_ACCESS_KEY": "example-secret-key"}
    env = isolated_env(tmp_path, {**own_keys, "AWS_EC2_METADATA_DISABLED": "true"})
    with daemon(["serve", "--config", str(file)], env) as d:
        d.wait_for(r"serving container credentials on http://127\.0\.0\.1:\d+/v1/credentials")
        assert not token_file.read_bytes().endswith(b"\n")
        whoami = (
            "import boto3; print(boto3.client('sts', region_name='us-east-1').get_caller_identity()['Arn'])"
        )
        py = sys.executable
        script = f'eval "$("{py}" -m imds_proxy env --container --config "{file}")" && "{py}" -c "{whoami}"'
        shell_env = {**env, "AWS_ENDPOINT_URL": local_aws.url}
        result = subprocess.run(
            ["sh", "-c", script], env=shell_env, capture_output=True, text=True, timeout=60
        )
        assert d.stop() == 0
    assert result.returncode == 0, result.stderr
    assert "assumed-role/imds-proxy-sandbox/" in result.stdout
    token = token_file.read_text()
    assert not any(token in line for line in d.stderr), "the daemon logged its token"


# --- env ---------------------------------------------------------------------------------


def test_env_lines_make_a_shell_use_our_imds(tmp_path: Path) -> None:
    file = config_file(tmp_path, 'listen = ["127.0.0.1:8169"]\n')
    script = f'eval "$("{sys.executable}" -m imds_proxy env --config "{file}")" && env'
    inherited = {
        "AWS_ACCESS_KEY_ID": "AKIAIOSFODNN7EXAMPLE",
        "AWS_PROFILE": "work",
        "AWS_CONTAINER_CREDENTIALS_FULL_URI": "http://127.0.0.1:1/",
    }
    result = subprocess.run(
        ["sh", "-c", script],
        env=isolated_env(tmp_path, inherited),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    after = dict(line.split("=", 1) for line in result.stdout.splitlines() if "=" in line)
    assert after["AWS_EC2_METADATA_SERVICE_ENDPOINT"] == "http://127.0.0.1:8169/"
    assert not set(inherited) & set(after)


def test_env_container_points_at_the_token_file_and_never_prints_the_token(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    token_file = tmp_path / "token"
    token_file.write_text(TOKEN)
    file = config_file(tmp_path, f'listen = ["0.0.0.0:8169"]\ncontainer_token_file = "{token_file}"\n')
    code, out, _ = env_output(capsys, "--config", str(file), "--container")
    assert code == 0
    assert TOKEN not in out
    assert "export AWS_CONTAINER_CREDENTIALS_FULL_URI='http://127.0.0.1:8169/v1/credentials'" in out
    assert f"export AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE='{token_file}'" in out
    unset = next(line for line in out.splitlines() if line.startswith("unset "))
    # Java prefers the plain token to the file; most SDKs prefer RELATIVE_URI to FULL_URI.
    assert {"AWS_CONTAINER_AUTHORIZATION_TOKEN", "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI"} <= set(
        unset.split()
    )


def test_env_container_with_an_inline_token_refuses_to_print_it(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    file = config_file(tmp_path, f'container_token = "{TOKEN}"\n')
    code, out, err = env_output(capsys, "--config", str(file), "--container")
    assert code == 2 and out == ""
    assert "container_token_file" in err and TOKEN not in err


def test_env_container_refuses_a_host_sdks_refuse(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    file = config_file(tmp_path, 'listen = ["10.1.2.3:8169"]\ncontainer_token_file = "/run/token"\n')
    code, out, err = env_output(capsys, "--config", str(file), "--container")
    assert code == 2 and out == ""
    assert "169.254.170.2" in err and "127.0.0.1" in err


def test_env_role_picks_its_listener_or_its_path(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    file = tmp_path / "config.toml"
    file.write_text(
        'listen = ["127.0.0.1:8169=one", "127.0.0.1:8170=two"]\ncontainer_token_file = "/run/token"\n'
        '[roles.one]\nrole_arn = "arn:aws:iam::111111111111:role/one"\n'
        '[roles.two]\nrole_arn = "arn:aws:iam::222222222222:role/two"\n'
    )
    _, imds, _ = env_output(capsys, "--config", str(file), "--role", "two")
    assert "AWS_EC2_METADATA_SERVICE_ENDPOINT='http://127.0.0.1:8170/'" in imds
    _, container, _ = env_output(capsys, "--config", str(file), "--role", "two", "--container")
    assert "AWS_CONTAINER_CREDENTIALS_FULL_URI='http://127.0.0.1:8169/v1/credentials/two'" in container


def profile_config(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, body: str) -> Path:
    """A config whose role comes from a ~/.aws/config profile, as `serve` accepts it."""
    aws_config = tmp_path / "aws-config"
    aws_config.write_text(f"[profile dev]\nrole_arn = {ROLE_ARN}\nsource_profile = base\n[profile base]\n")
    monkeypatch.setenv("AWS_CONFIG_FILE", str(aws_config))
    file = tmp_path / "config.toml"
    file.write_text(body + '[roles.dev]\nprofile = "dev"\n')
    return file


def test_env_reads_a_config_whose_roles_come_from_profiles(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    file = profile_config(tmp_path, monkeypatch, 'listen = ["127.0.0.1:8169=dev"]\n')
    code, out, err = env_output(capsys, "--config", str(file))
    assert code == 0, err
    assert "export AWS_EC2_METADATA_SERVICE_ENDPOINT='http://127.0.0.1:8169/'" in out


def test_sh_quoting_survives_eval(tmp_path: Path) -> None:
    odd = '/tmp/it\'s a "token" $HOME'
    change = shellenv.container_change("http://127.0.0.1:1/v1/credentials", token_file=odd)
    script = shellenv.render(change, "sh") + '\nprintf %s "$AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE"'
    result = subprocess.run(["sh", "-c", script], capture_output=True, text=True, timeout=10)
    assert result.stdout == odd


def test_fish_and_powershell_lines() -> None:
    change = shellenv.container_change("http://127.0.0.1:1/v1/credentials", token_file="/run/it's")
    fish = shellenv.render(change, "fish").splitlines()
    assert "set -gx AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE '/run/it\\'s'" in fish
    assert "set -q AWS_PROFILE; and set -e AWS_PROFILE" in fish
    ps = shellenv.render(change, "powershell").splitlines()
    assert "$Env:AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE = '/run/it''s'" in ps
    assert "Remove-Item Env:AWS_PROFILE -ErrorAction SilentlyContinue" in ps


# --- healthcheck ---------------------------------------------------------------------------


async def healthcheck(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    code = await asyncio.to_thread(cli.main, ["healthcheck", *args])
    out, err = capsys.readouterr()
    return code, out, err


async def test_healthcheck_passes_when_credentials_are_served(
    aiohttp_server: ServerFactory, capsys: pytest.CaptureFixture[str]
) -> None:
    served = await serve(aiohttp_server, two_roles(), now_clock())
    code, out, _ = await healthcheck(capsys, "--listen", f"127.0.0.1:{served.port}")
    assert code == 0
    assert out.startswith("healthy: role one on http://127.0.0.1:") and "valid for 59 min" in out


async def test_healthcheck_fails_saying_why_when_the_role_is_unusable(
    aiohttp_server: ServerFactory, capsys: pytest.CaptureFixture[str]
) -> None:
    served = await serve(aiohttp_server, two_roles(), now_clock())
    served.sources["one"].fail_with = AssumeRoleDenied("the trust policy does not trust the caller")
    code, _, err = await healthcheck(capsys, "--listen", f"127.0.0.1:{served.port}")
    assert code == 1
    assert err.startswith("imds-proxy: unhealthy: ") and "AssumeRoleUnauthorizedAccess" in err


async def test_healthcheck_fails_when_nothing_listens(capsys: pytest.CaptureFixture[str]) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # bound, not listening: connections are refused
        code, _, err = await healthcheck(capsys, "--listen", f"127.0.0.1:{port}", "--timeout", "2")
    assert code == 1
    assert "no answer from" in err and len(err.strip().splitlines()) == 1


async def test_healthcheck_reads_the_listeners_from_the_config(
    aiohttp_server: ServerFactory, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    served = await serve(aiohttp_server, two_roles(), now_clock())
    file = config_file(tmp_path, f'listen = ["0.0.0.0:{served.port}"]\n')  # probed on 127.0.0.1
    code, out, _ = await healthcheck(capsys, "--config", str(file))
    assert code == 0, out


async def test_healthcheck_reads_a_config_whose_roles_come_from_profiles(
    aiohttp_server: ServerFactory,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    served = await serve(aiohttp_server, two_roles(), now_clock())
    file = profile_config(tmp_path, monkeypatch, f'listen = ["127.0.0.1:{served.port}"]\n')
    code, out, err = await healthcheck(capsys, "--config", str(file))
    assert code == 0, err
    assert out.startswith("healthy: ")
