"""The AWS SDK for Go v2 (Debian 12's golang-github-aws-aws-sdk-go-v2-dev) against the real daemon.

Go is the strictest IMDS client (protocol.md §4.5): its token step needs the TTL response
header, its credentials need `Code: Success`, and for a role EC2 cannot use it reports the
error document's `Code: Message`.
"""

from __future__ import annotations

import json
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
    go_resolve_fixture,
    run,
    sandbox_role_fixture,
    sdk_home_fixture,
    subprocess_env,
)

pytestmark = pytest.mark.sdk


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
