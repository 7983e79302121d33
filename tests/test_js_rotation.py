"""A long-running JS SDK app across a rotation: with a short served lifetime, one default-chain
provider, resolving again and again, picks up the key the daemon rotated to."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestServer

from imds_proxy import config
from imds_proxy.aws.sts import AssumeRoleSource
from imds_proxy.engine import served_lifetime
from imds_proxy.engine.credentials import utc_now
from imds_proxy.engine.policy import RefreshPolicy
from imds_proxy.engine.refresh import CredentialEngine
from imds_proxy.server.app import create_app

from fakes import FakeClock
from sdk_support import JS_DIR, require_js, subprocess_env

pytestmark = pytest.mark.sdk
LIFETIME = timedelta(seconds=60)


async def test_js_provider_resolving_repeatedly_picks_up_the_rotated_key(
    aiohttp_server: Callable[..., Awaitable[TestServer]], local_aws: Any, tmp_path: Path
) -> None:
    node = require_js()
    clock = FakeClock(utc_now().replace(microsecond=0))  # our clock starts at node's
    cfg = config.build({"role_arn": local_aws.role_arn, "listen": ["127.0.0.1:0"], "region": "us-east-1"})
    policy = served_lifetime.policy_for(RefreshPolicy.of(cfg), LIFETIME)
    sts = await asyncio.to_thread(local_aws.client, "sts")
    source = served_lifetime.ServedLifetime(
        AssumeRoleSource(cfg.role, clock, lambda _spec: sts), LIFETIME, clock
    )
    engine = CredentialEngine({cfg.role.name: source}, policy, clock)
    server = await aiohttp_server(create_app(cfg, engine, clock=clock))
    env = subprocess_env(tmp_path, str(server.make_url("/")), v1_disabled=True, AWS_REGION="us-east-1")
    proc = await asyncio.create_subprocess_exec(
        node,
        "resolve_loop.mjs",
        cwd=JS_DIR,
        env=env,
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    assert proc.stdin is not None and proc.stdout is not None

    async def resolve() -> dict[str, str]:
        proc.stdin.write(b"\n")  # type: ignore[union-attr]
        line = await asyncio.wait_for(proc.stdout.readline(), 30)  # type: ignore[union-attr]
        out: dict[str, str] = json.loads(line)
        assert "error" not in out, out["error"]
        return out

    try:
        first = await resolve()
        served_first = engine.cached(cfg.role.name)
        assert served_first is not None and first["accessKeyId"] == served_first.access_key_id

        # Past the rotation point on our clock: the daemon re-assumes and serves a new key.
        clock.advance(seconds=served_lifetime.rotation_period(LIFETIME, policy).total_seconds())
        await engine.tick()
        await engine.settle()
        rotated = engine.cached(cfg.role.name)
        assert rotated is not None and rotated.access_key_id != first["accessKeyId"]

        # Under 5 minutes left, the SDK refreshes in the background: the next calls still
        # return the old key until that refresh lands; a bounded number must reach the new one.
        seen: list[str] = []
        while len(seen) < 200 and rotated.access_key_id not in seen:
            seen.append((await resolve())["accessKeyId"])
        assert seen[-1] == rotated.access_key_id, "the JS SDK never picked up the rotated key"
        assert set(seen) <= {first["accessKeyId"], rotated.access_key_id}
    finally:
        proc.stdin.close()
        await asyncio.wait_for(proc.wait(), 30)
