"""The AWS CLI v2 (Debian 12's package, 2.9) against the real daemon: it resolves the role over
IMDSv2 and, with no region configured anywhere, takes the region from IMDS (the availability
zone minus its letter), with and without AWS_EC2_METADATA_V1_DISABLED.

This CLI predates AWS_ENDPOINT_URL (2.13): every call here passes --endpoint-url, so nothing
leaves loopback.
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

from sdk_support import (  # noqa: F401  (the *_fixture names register the fixtures)
    ASSUMED_ROLE,
    Daemon,
    assert_no_secrets,
    daemon_fixture,
    run,
    sandbox_role_fixture,
    sdk_home_fixture,
    skip_unless_ci,
    subprocess_env,
)

pytestmark = pytest.mark.sdk
CLI_V2 = Path("/usr/bin/aws")  # Debian's awscli package; .ci/run installs it


def require_cli_v2() -> str:
    """The AWS CLI v2; skip without it, but fail on CI, which must run it."""
    version = ""
    if CLI_V2.is_file():
        out = subprocess.run([str(CLI_V2), "--version"], capture_output=True, text=True, timeout=60)
        version = out.stdout + out.stderr
    if not version.startswith("aws-cli/2."):
        skip_unless_ci("the AWS CLI v2 is not installed at /usr/bin/aws (apt-get install awscli)")
    return str(CLI_V2)


@pytest.mark.parametrize("v1_disabled", [False, True], ids=["default", "v1-disabled"])
async def test_aws_cli_v2_uses_the_role_and_the_region_from_imds(
    daemon: Daemon, sdk_home: Path, v1_disabled: bool
) -> None:
    aws = require_cli_v2()
    env = subprocess_env(sdk_home, daemon.url, v1_disabled=v1_disabled)  # no region anywhere
    assert daemon.url.endswith("/")  # this CLI appends latest/api/token with no separator
    who = (
        await run(
            [aws, "sts", "get-caller-identity", "--endpoint-url", daemon.aws_url, "--output", "json"], env
        )
    ).check()
    region = (await run([aws, "configure", "list"], env)).check()
    served = await daemon.served()

    assert ASSUMED_ROLE in json.loads(who.stdout)["Arn"]
    rows = {row[0]: row for row in (line.split() for line in region.stdout.splitlines()) if row}
    assert rows["region"][1:3] == ["us-east-1", "imds"], rows["region"]
    assert rows["access_key"][1].endswith(served["AccessKeyId"][-4:])
    assert rows["access_key"][2] == "iam-role"
    for result in (who, region):
        assert_no_secrets("AWS CLI v2 output", result.stdout + result.stderr, served)
