"""Helpers for the container-channel tests: a config with two roles and a token, the real
app on a loopback port (fake sources), and requests from a chosen loopback source address."""

from __future__ import annotations

import asyncio
import dataclasses
import json
import os
import random
import shutil
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp.test_utils import TestServer

from imds_proxy import config
from imds_proxy.config import Config
from imds_proxy.engine.policy import RefreshPolicy
from imds_proxy.engine.refresh import CredentialEngine
from imds_proxy.engine.tokens import TokenIssuer
from imds_proxy.server.app import create_app

from fakes import ISSUED, FakeClock, FakeSource, remember
from procs import isolated_env

#: A container token for tests (random enough for a test; never a real one).
TOKEN = "test-container-token-0123456789abcdef"
ISSUED.add(TOKEN)  # the log check looks for it like any secret
ONE_ARN = "arn:aws:iam::111111111111:role/one"
TWO_ARN = "arn:aws:iam::222222222222:role/two"

ServerFactory = Callable[..., Awaitable[TestServer]]


def two_roles(**values: Any) -> Config:
    """Roles `one` (the default) and `two`, the container endpoint on with TOKEN."""
    base: dict[str, Any] = {
        "listen": ["127.0.0.1:0"],
        "container_token": TOKEN,
        "roles": {"one": {"role_arn": ONE_ARN}, "two": {"role_arn": TWO_ARN}},
    }
    base.update(values)
    return config.build(base)


def now_clock() -> FakeClock:
    """A fake clock at the real time: SDKs judge expiry by their own clock."""
    return FakeClock(datetime.now(UTC).replace(microsecond=0))


@dataclass
class Served:
    """The real app for one listener on 127.0.0.1:<free port>, with fake sources per role."""

    server: TestServer
    engine: CredentialEngine
    sources: dict[str, FakeSource]

    @property
    def base(self) -> str:
        return str(self.server.make_url("/")).rstrip("/")

    @property
    def port(self) -> int:
        port = self.server.port
        assert port is not None
        return port


async def serve(
    aiohttp_server: ServerFactory,
    cfg: Config,
    clock: FakeClock,
    *,
    role: str | None = None,
    engine: CredentialEngine | None = None,
    sources: dict[str, FakeSource] | None = None,
) -> Served:
    """Start one listener's app; pass `engine` and `sources` to share them between listeners."""
    if sources is None:
        # Key ids that say whose they are: ASIAONE_…, ASIATWO_…
        sources = {
            name: FakeSource(clock, role_arn=spec.role_arn, key_prefix=f"ASIA{name.upper():_<4.4}")
            for name, spec in cfg.roles.items()
        }
    if engine is None:
        engine = CredentialEngine(sources, RefreshPolicy.of(cfg), clock, rng=random.Random(7))
    listener = cfg.listeners[0] if role is None else dataclasses.replace(cfg.listeners[0], role=role)
    app = create_app(cfg, engine, listener, clock=clock, tokens=TokenIssuer(clock.seconds))
    return Served(await aiohttp_server(app, host="127.0.0.1"), engine, sources)


async def fetch(
    url: str, *, token: str | None = TOKEN, source: str | None = None, method: str = "GET"
) -> tuple[int, dict[str, Any]]:
    """One request to the container route, optionally from a chosen source address."""
    connector = aiohttp.TCPConnector(local_addr=(source, 0)) if source else None
    headers = {"Authorization": token} if token is not None else {}
    async with (
        aiohttp.ClientSession(connector=connector) as http,
        http.request(method, url, headers=headers) as resp,
    ):
        text = await resp.text()
        doc: dict[str, Any] = json.loads(text) if text else {}
        return resp.status, remember(doc)


# --- the JS SDK --------------------------------------------------------------------------

JS_DIR = Path(__file__).parent / "js"
JS_PACKAGES = ("@aws-sdk/credential-provider-node", "@aws-sdk/credential-provider-http")


def require_node() -> str:
    """node with the SDK packages installed (make test installs them); skip without them,
    but fail on CI."""
    node = shutil.which("node")
    installed = all((JS_DIR / "node_modules" / pkg / "package.json").is_file() for pkg in JS_PACKAGES)
    if node is None or not installed:
        missing = "node is not installed" if node is None else "npm packages missing: run `make test`"
        if os.environ.get("CI"):
            pytest.fail(f"{missing} (CI is set: the JS SDK tests must run)")
        pytest.skip(missing)
    return node


@dataclass
class NodeResult:
    code: int
    out: dict[str, Any]
    stderr: str


async def run_node(mode: str, home: Path, env: Mapping[str, str]) -> NodeResult:
    """`node container.mjs MODE` with an isolated environment plus `env`, without blocking
    the event loop the daemon serves on."""
    node = require_node()
    proc = await asyncio.create_subprocess_exec(
        node,
        "container.mjs",
        mode,
        cwd=JS_DIR,
        env=isolated_env(home, {"AWS_EC2_METADATA_DISABLED": "true", **env}),
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(proc.communicate(), 60)
    assert proc.returncode is not None
    text = out.decode()
    return NodeResult(proc.returncode, json.loads(text) if proc.returncode == 0 else {}, err.decode())
