"""This host as an instance (docs/host.md, "a service owning the address"): the address on our
own link (`imds-proxy address up`), the daemon started by systemd-socket-activate on
169.254.169.254:80 and [fd00:ec2::254]:80 and run as `nobody`, and real SDKs with no endpoint
setting get the role — in IPv4 and IPv6 endpoint mode. All inside a fresh network namespace."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from test_cli_v2 import require_cli_v2

from host_support import daemon, daemon_env, moto_sts, shared_venv, wait_for_key  # noqa: F401
from netns import Netns, namespaces
from procs import isolated_env
from sdk_support import JS_DIR, go_resolve_fixture, require_js  # noqa: F401  (registers the fixture)

pytestmark = pytest.mark.sdk
BASES = {"IPv4": "http://169.254.169.254/", "IPv6": "http://[fd00:ec2::254]/"}


@pytest.fixture(scope="module")
def instance(shared_venv: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Netns, str]]:  # noqa: F811
    """The namespace and the AccessKeyId its metadata service serves (checked: by `nobody`)."""
    log = tmp_path_factory.mktemp("host") / "daemon.log"
    tool = str(shared_venv / "bin" / "imds-proxy")
    with namespaces(1) as (ns,):
        ns.sh(tool, "address", "up")
        with moto_sts(ns) as sts:
            env = daemon_env(sts)
            argv = ns.argv(
                "systemd-socket-activate",
                "-l", "169.254.169.254:80",
                "-l", "[fd00:ec2::254]:80",
                "--fdname=imds-v4:imds-v6",
                *(f"-E{k}={v}" for k, v in env.items()),
                "setpriv", "--reuid=nobody", "--regid=nogroup", "--clear-groups",
                tool, "serve",
            )  # fmt: skip
            with daemon(argv, env, log) as proc:
                key = wait_for_key(ns, BASES["IPv4"], proc, log)
                assert wait_for_key(ns, BASES["IPv6"], proc, log) == key
                # systemd-socket-activate and setpriv exec in place: the daemon has their pid.
                status = Path(f"/proc/{proc.pid}/status").read_text()
                assert "imds-proxy" in Path(f"/proc/{proc.pid}/cmdline").read_text()
                uids = next(line.split()[1:] for line in status.splitlines() if line.startswith("Uid:"))
                assert set(uids) == {"65534"}, f"the daemon runs as uids {uids}, not nobody"
                caps = next(line.split()[1] for line in status.splitlines() if line.startswith("CapEff:"))
                assert int(caps, 16) == 0, f"the daemon has capabilities {caps}"
                yield ns, key
        text = log.read_text()
        assert "socket imds-v4 from systemd" in text and "socket imds-v6 from systemd" in text, text


def client_env(home: Path, mode: str) -> dict[str, str]:
    """No endpoint setting at all; only the endpoint mode in IPv6."""
    home.mkdir(exist_ok=True)
    extra = {"AWS_EC2_METADATA_SERVICE_ENDPOINT_MODE": mode} if mode == "IPv6" else {}
    return isolated_env(home, extra)


def in_ns(ns: Netns, argv: list[str], env: dict[str, str]) -> str:
    done = subprocess.run(ns.argv(*argv), env=env, capture_output=True, text=True, timeout=60, check=False)
    assert done.returncode == 0, f"{argv[0]}: {done.stdout}{done.stderr}"
    return done.stdout


@pytest.mark.parametrize("mode", ["IPv4", "IPv6"])
def test_boto3_with_no_setting_gets_the_role(instance: tuple[Netns, str], tmp_path: Path, mode: str) -> None:
    ns, key = instance
    code = "import boto3; c = boto3.Session().get_credentials(); print(c.method, c.access_key)"
    out = in_ns(ns, [sys.executable, "-c", code], client_env(tmp_path / "home", mode))
    assert out.split() == ["iam-role", key]


@pytest.mark.parametrize("mode", ["IPv4", "IPv6"])
def test_aws_cli_v2_with_no_setting_gets_the_role(
    instance: tuple[Netns, str], tmp_path: Path, mode: str
) -> None:
    ns, key = instance
    out = in_ns(ns, [require_cli_v2(), "configure", "list"], client_env(tmp_path / "home", mode))
    row = next(line.split() for line in out.splitlines() if line.split()[:1] == ["access_key"])
    assert row[1].endswith(key[-4:]) and row[2] == "iam-role", row


@pytest.mark.parametrize("mode", ["IPv4", "IPv6"])
def test_js_sdk_v3_with_no_setting_gets_the_role(
    instance: tuple[Netns, str], tmp_path: Path, mode: str
) -> None:
    ns, key = instance
    out = in_ns(ns, [require_js(), str(JS_DIR / "resolve.mjs")], client_env(tmp_path / "home", mode))
    assert json.loads(out)["accessKeyId"] == key


@pytest.mark.parametrize("mode", ["IPv4", "IPv6"])
def test_go_sdk_v2_with_no_setting_gets_the_role(
    instance: tuple[Netns, str], tmp_path: Path, mode: str, go_resolve: str
) -> None:
    ns, key = instance
    out = json.loads(in_ns(ns, [go_resolve], client_env(tmp_path / "home", mode)))
    assert out["accessKeyId"] == key and out["source"] == "EC2RoleProvider"
