"""The AWS SDK for Go v2 (Debian 12's golang-github-aws-aws-sdk-go-v2-dev) against the real daemon.

Go is the strictest IMDS client (protocol.md §4.5): its token step needs the TTL response
header, its credentials need `Code: Success`, and for a role EC2 cannot use it reports the
error document's `Code: Message`.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from collections.abc import Awaitable, Callable
from pathlib import Path

import pytest
from aiohttp.test_utils import TestServer

from imds_proxy.engine.policy import RefreshPolicy
from imds_proxy.engine.refresh import CredentialEngine
from imds_proxy.errors import AssumeRoleDenied
from imds_proxy.server.app import create_app

from conftest import make_config
from fakes import FakeClock, FakeSource
from sdk_support import (  # noqa: F401  (the *_fixture names register the fixtures)
    Daemon,
    daemon_fixture,
    run,
    sandbox_role_fixture,
    sdk_home_fixture,
    skip_unless_ci,
    subprocess_env,
)

pytestmark = pytest.mark.sdk
SOURCE = Path(__file__).parent / "go" / "resolve"
GOPATH = Path("/usr/share/gocode")  # Debian's Go library packages live here
SDK = GOPATH / "src/github.com/aws/aws-sdk-go-v2/config"


@pytest.fixture(scope="session")
def go_resolve(tmp_path_factory: pytest.TempPathFactory) -> str:
    """tests/go/resolve built once per session; skip without Go and the SDK, fail on CI."""
    go = shutil.which("go")
    if go is None or not SDK.is_dir():
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
        "GOCACHE": str(out.parent / "cache"),
        "GOFLAGS": "",
    }
    build = subprocess.run(
        [go, "build", "-o", str(out), "."], cwd=SOURCE, env=env, capture_output=True, text=True, timeout=300
    )
    assert build.returncode == 0, build.stderr
    return str(out)


@pytest.mark.parametrize("v1_disabled", [False, True], ids=["default", "v1-disabled"])
async def test_go_sdk_v2_default_chain_gets_the_served_role(
    daemon: Daemon, sdk_home: Path, go_resolve: str, v1_disabled: bool
) -> None:
    env = subprocess_env(sdk_home, daemon.url, v1_disabled=v1_disabled)
    result = (await run([go_resolve], env)).check()
    served = await daemon.served()
    out = json.loads(result.stdout)
    assert out["accessKeyId"] == served["AccessKeyId"]
    assert out["source"] == "EC2RoleProvider" and out["canExpire"] is True
    # This Go SDK caps the expiry it keeps at one hour after the fetch; ours is an hour too.
    assert out["expires"] <= served["Expiration"]
    assert served["SecretAccessKey"] not in result.stdout + result.stderr


async def test_go_sdk_v2_reports_an_unusable_role_as_code_and_message(
    aiohttp_server: Callable[..., Awaitable[TestServer]], sdk_home: Path, go_resolve: str
) -> None:
    clock = FakeClock()
    source = FakeSource(clock)
    source.fail_with = AssumeRoleDenied("the trust policy of the role does not trust ec2.amazonaws.com")
    cfg = make_config()
    engine = CredentialEngine({cfg.role.name: source}, RefreshPolicy.of(cfg), clock)
    server = await aiohttp_server(create_app(cfg, engine, clock=clock))
    env = subprocess_env(sdk_home, str(server.make_url("/")), v1_disabled=True)
    result = await run([go_resolve], env)
    assert result.returncode == 2, result.stdout
    assert "AssumeRoleUnauthorizedAccess" in result.stderr
    assert "does not trust ec2.amazonaws.com" in result.stderr
