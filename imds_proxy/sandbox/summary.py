"""What the sandbox tells its user once it serves: the export lines on standard output, and the
human summary (scenario, role, endpoints, what to try) on standard error."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from datetime import timedelta

from imds_proxy.errors import SourceError
from imds_proxy.runtime import shellenv
from imds_proxy.sandbox.local_aws import REGION, World
from imds_proxy.sandbox.scenarios.model import EC2


def exports(imds_url: str, aws_url: str, region: str = REGION) -> str:
    """The shell lines that point SDKs at us and their AWS calls at the local AWS.
    Environment keys, profiles and container credentials would win over IMDS in every SDK,
    and AWS_EC2_METADATA_DISABLED would switch it off, so they are unset (as `env` does)."""
    return "\n".join(
        [
            "unset " + " ".join(shellenv.imds_change(imds_url).unset),
            # Trailing slash: every SDK accepts it, and Debian 12's AWS CLI v2 needs it.
            f"export AWS_EC2_METADATA_SERVICE_ENDPOINT={imds_url}",
            f"export AWS_ENDPOINT_URL={aws_url}",
            # AWS_REGION for the JS, Go and Java SDKs; botocore and the CLI read the other.
            f"export AWS_REGION={region}",
            f"export AWS_DEFAULT_REGION={region}",
        ]
    )


#: The AWS CLI reads AWS_ENDPOINT_URL from these versions on; older ones send to real AWS.
ENDPOINT_URL_SINCE = {1: (1, 29), 2: (2, 13)}


def cli_version(path: str | None = None) -> str | None:
    """`aws --version` of the AWS CLI on PATH (`path`: another PATH), or None."""
    aws = shutil.which("aws", path=path if path is not None else os.environ.get("PATH"))
    if aws is None:
        return None
    try:
        out = subprocess.run([aws, "--version"], capture_output=True, text=True, timeout=20, check=False)
    except (OSError, subprocess.SubprocessError):
        return None
    m = re.search(r"aws-cli/(\d+\.\d+\.\d+)", out.stdout + out.stderr)
    return m.group(1) if m else None


def needs_endpoint_flag(version: str | None) -> bool:
    """Whether that CLI ignores AWS_ENDPOINT_URL (an unknown one is assumed to)."""
    if version is None:
        return True
    major, minor = (int(p) for p in version.split(".")[:2])
    since = ENDPOINT_URL_SINCE.get(major)
    return since is None or (major, minor) < since


def summary(
    world: World,
    imds_url: str,
    aws_url: str,
    session_name: str,
    denied: SourceError | None,
    rotation: tuple[timedelta, timedelta] | None,
    cli: str | None = None,
) -> str:
    """The human summary printed on standard error once the daemon serves. `cli`: the version
    of the AWS CLI on PATH; the try lines pass --endpoint-url when it ignores AWS_ENDPOINT_URL."""
    s = world.scenario
    variant = f" (variant {s.variant})" if s.variant else ""
    by = f"{EC2} (instance profile)" if s.caller is None else world.caller_arn
    lines = [
        f"imds-proxy sandbox: scenario {s.name}{variant}: {s.description}",
        f"  role      {s.role.arn} (account {s.role.account}), assumed by {by}",
        f"  IMDS      {imds_url}",
        f"  local AWS {aws_url} (moto; IAM enforced)",
    ]
    if rotation is not None:
        lifetime, every = rotation
        lines.append(
            f"  rotation  served credentials expire {lifetime.total_seconds():g} s after issue; new keys "
            f"every {every.total_seconds():g} s (logged as 'rotation'); old keys stay valid at STS"
        )
    if denied is not None:
        lines.append(
            "  NOTE      the role cannot be assumed (see the warning above); as on EC2, its credentials path "
            f"answers an error document (Code {denied.code}) instead of keys, and SDKs find no credentials"
        )
    lines.append("In another shell, run the export lines printed above, then try:")
    flag = needs_endpoint_flag(cli)
    if flag:
        which = f"the AWS CLI on PATH ({cli})" if cli else "no AWS CLI version found on PATH"
        lines.append(
            f"  ({which}: these lines pass --endpoint-url; CLIs before 2.13 and 1.29 ignore AWS_ENDPOINT_URL)"
        )

    def cmd(c: str) -> str:
        return re.sub(r"^aws ", f"aws --endpoint-url {aws_url} ", c) if flag else c

    identity = f"arn:aws:sts::{s.role.account}:assumed-role/{s.role.name}/{session_name}"
    if denied is None:
        lines.append(f"  allowed   {cmd('aws sts get-caller-identity')}   # {identity}")
    lines += [f"  allowed   {cmd(c)}" for c in s.try_allowed]
    refused = "denied   " if denied is None else "fails    "
    lines += [f"  {refused} {cmd(c)}" for c in s.try_denied]
    lines.append("Ctrl-C stops.")
    return "\n".join(lines)
