"""Fixtures and helpers for the real-client tests (tests/test_sdk_clients.py).

moto's STS runs once per session on loopback (conftest's `local_aws`); every test gets
the real daemon app on its own loopback port, backed by that STS, and runs a real client
against it with a clean, isolated environment (no ~/.aws, no environment keys, no other
credential source).
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import subprocess
import sys
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp.test_utils import TestServer

from imds_proxy import config
from imds_proxy.aws.sts import AssumeRoleSource
from imds_proxy.engine.credentials import utc_now
from imds_proxy.engine.policy import RefreshPolicy
from imds_proxy.engine.refresh import CredentialEngine
from imds_proxy.sandbox.local_aws import REGION, LocalAws
from imds_proxy.server.app import create_app

from conftest import DEFAULT_ROLE
from fakes import remember
from procs import dropped, isolated_env, isolated_vars

JS_DIR = Path(__file__).parent / "js"
GO_SOURCE = Path(__file__).parent / "go" / "resolve"
GOPATH = Path("/usr/share/gocode")  # Debian's Go library packages live here
GO_SDK = GOPATH / "src/github.com/aws/aws-sdk-go-v2/config"
JS_PACKAGES = ("@aws-sdk/credential-provider-node", "@aws-sdk/client-sts")
SUBPROCESS_TIMEOUT = 60.0
#: The assumed-role ARN moto answers GetCallerIdentity with for keys of our role.
ASSUMED_ROLE = f"assumed-role/{DEFAULT_ROLE}/"

# --- moto and the role ---------------------------------------------------------------


@pytest.fixture(scope="session", name="sandbox_role")
def sandbox_role_fixture(local_aws: LocalAws) -> str:
    """The sandbox role's ARN. moto's backends are process-wide and create_default_role is
    not idempotent, so the role comes from conftest's session-wide `local_aws`, which
    starts moto's threaded server on loopback and creates the role once."""
    arn: str = local_aws.role_arn  # type: ignore[attr-defined]
    assert arn.endswith(f":role/{DEFAULT_ROLE}"), arn
    return arn


# --- the daemon ------------------------------------------------------------------------


@dataclass
class Daemon:
    """The real daemon app on a loopback port, backed by moto's STS."""

    server: TestServer
    engine: CredentialEngine
    role_arn: str
    aws_url: str

    @property
    def url(self) -> str:
        """The IMDS endpoint for AWS_EC2_METADATA_SERVICE_ENDPOINT (trailing slash kept)."""
        return str(self.server.make_url("/"))

    async def served(self) -> dict[str, str]:
        """The credential document the endpoint serves right now, fetched the IMDSv2 way.
        Its secrets are registered for the log check in conftest."""
        async with aiohttp.ClientSession(base_url=self.url) as http:
            async with http.put(
                "/latest/api/token", headers={"X-aws-ec2-metadata-token-ttl-seconds": "60"}
            ) as resp:
                assert resp.status == 200, f"token PUT answered {resp.status}"
                token = await resp.text()
            headers = {"X-aws-ec2-metadata-token": token}
            path = "/latest/meta-data/iam/security-credentials/"
            async with http.get(path, headers=headers) as resp:
                assert resp.status == 200, f"role listing answered {resp.status}"
                role = await resp.text()
            async with http.get(path + role, headers=headers) as resp:
                assert resp.status == 200, f"credentials answered {resp.status}"
                doc: dict[str, str] = json.loads(await resp.text())
        assert doc.get("Code") == "Success", f"no credentials served: {doc.get('Message')}"
        return remember(doc)


@pytest.fixture(name="daemon")
async def daemon_fixture(
    aiohttp_server: Callable[..., Awaitable[TestServer]],
    local_aws: LocalAws,
    sandbox_role: str,
) -> AsyncIterator[Daemon]:
    """The real app (real clock, background refresh on) on 127.0.0.1:<free port>."""
    cfg = config.build({"role_arn": sandbox_role, "listen": ["127.0.0.1:0"], "region": REGION})
    sts = await asyncio.to_thread(local_aws.client, "sts")
    source = AssumeRoleSource(cfg.role, utc_now, lambda _spec: sts)
    engine = CredentialEngine({cfg.role.name: source}, RefreshPolicy.of(cfg), utc_now)
    app = create_app(cfg, engine, clock=utc_now)
    server = await aiohttp_server(app)
    yield Daemon(server=server, engine=engine, role_arn=sandbox_role, aws_url=local_aws.url)
    await engine.settle()


# --- client isolation ------------------------------------------------------------------


@pytest.fixture(name="sdk_home")
def sdk_home_fixture(tmp_path: Path) -> Path:
    """An empty HOME: no ~/.aws, no SDK caches."""
    home = tmp_path / "home"
    home.mkdir()
    return home


def client_vars(home: Path, imds_url: str, *, v1_disabled: bool) -> dict[str, str]:
    """What every client gets on top of the isolated environment."""
    values = {**isolated_vars(home), "AWS_EC2_METADATA_SERVICE_ENDPOINT": imds_url}
    if v1_disabled:
        values["AWS_EC2_METADATA_V1_DISABLED"] = "true"
    return values


def subprocess_env(home: Path, imds_url: str, *, v1_disabled: bool, **extra: str) -> dict[str, str]:
    """The environment for a client subprocess: ours without any AWS_* variable, plus
    HOME, config paths and the IMDS endpoint."""
    return isolated_env(home, {**client_vars(home, imds_url, v1_disabled=v1_disabled), **extra})


def isolate_process(monkeypatch: pytest.MonkeyPatch, home: Path, imds_url: str, *, v1_disabled: bool) -> None:
    """The same isolation for an in-process client (botocore)."""
    for name in list(os.environ):
        if dropped(name):
            monkeypatch.delenv(name)
    for name, value in client_vars(home, imds_url, v1_disabled=v1_disabled).items():
        monkeypatch.setenv(name, value)


# --- subprocesses ----------------------------------------------------------------------


@dataclass
class Completed:
    argv: tuple[str, ...]
    returncode: int
    stdout: str
    stderr: str

    def check(self) -> Completed:
        assert self.returncode == 0, (
            f"{self.argv[0]} exited {self.returncode}\nstdout: {self.stdout}\nstderr: {self.stderr}"
        )
        return self


async def run(
    argv: Iterable[str],
    env: Mapping[str, str],
    cwd: Path | None = None,
    time_limit: float = SUBPROCESS_TIMEOUT,
) -> Completed:
    """Run a client without blocking the event loop (the daemon serves on it)."""
    args = tuple(argv)
    proc = await asyncio.create_subprocess_exec(
        *args,
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        env=dict(env),
        cwd=cwd,
    )
    try:
        out, err = await asyncio.wait_for(proc.communicate(), time_limit)
    except TimeoutError:
        proc.kill()
        await proc.wait()
        pytest.fail(f"{' '.join(args)} did not finish within {time_limit:.0f} s")
    assert proc.returncode is not None
    return Completed(args, proc.returncode, out.decode(errors="replace"), err.decode(errors="replace"))


def aws_cli() -> str:
    """AWS CLI v1 from the venv that runs the tests."""
    path = Path(sys.executable).parent / "aws"
    assert path.is_file(), f"AWS CLI v1 is not installed next to {sys.executable}"
    return str(path)


def require_js() -> str:
    """node, with the pinned SDK packages installed; skip without them, but fail on CI."""
    missing: str | None = None
    node = shutil.which("node")
    if node is None:
        missing = "node is not installed"
    elif not all((JS_DIR / "node_modules" / pkg / "package.json").is_file() for pkg in JS_PACKAGES):
        missing = "npm packages not installed: run `make test`"
    if missing is not None:
        skip_unless_ci(missing)
    assert node is not None
    return node


def skip_unless_ci(missing: str) -> None:
    """A client this machine lacks: skip, saying how to install it; under CI (`CI` set), where
    .ci/run installs every client, fail instead."""
    if os.environ.get("CI"):
        pytest.fail(f"{missing} (CI is set: this client's tests must run)")
    pytest.skip(missing)


@pytest.fixture(scope="session", name="go_resolve")
def go_resolve_fixture(tmp_path_factory: pytest.TempPathFactory) -> str:
    """tests/go/resolve (the AWS SDK for Go v2's default chain) built once per session and
    module that asks for it, sharing one build cache; skip without Go and the SDK, fail on CI."""
    go = shutil.which("go")
    if go is None or not GO_SDK.is_dir():
        skip_unless_ci(
            "Go or the AWS SDK for Go v2 is not installed "
            "(apt-get install golang-go golang-github-aws-aws-sdk-go-v2-dev)"
        )
    assert go is not None
    out = tmp_path_factory.mktemp("go") / "resolve"
    env = {
        **os.environ,
        "GO111MODULE": "off",
        "GOPATH": str(GOPATH),
        "GOCACHE": str(tmp_path_factory.getbasetemp() / "go-cache"),
        "GOFLAGS": "",
    }
    build = subprocess.run(
        [go, "build", "-o", str(out), "."],
        cwd=GO_SOURCE,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert build.returncode == 0, build.stderr
    return str(out)


# --- assertions --------------------------------------------------------------------------


def expiry(doc: Mapping[str, Any]) -> datetime:
    """A served document's Expiration as an aware datetime."""
    return datetime.fromisoformat(str(doc["Expiration"]))


def assert_no_secrets(where: str, text: str, *docs: Mapping[str, str]) -> None:
    """No secret key or session token of `docs` appears in `text` (and none is printed)."""
    for doc in docs:
        for field in ("SecretAccessKey", "Token"):
            leaked = doc[field] in text
            assert not leaked, f"{where} contains the served {field}"
