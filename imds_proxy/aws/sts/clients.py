"""botocore STS clients: the one on a role's source credentials, and one like it signing with other
keys (an MFA session's, or the role a chained role is assumed from).

Made by botocore's own Session.create_client, which is all boto3's Session.client does: boto3
(and the s3transfer and resource modules it imports, ~2 MiB) is not loaded by the daemon. The
one difference on the wire is the User-Agent STS logs: Botocore/… instead of Boto3/…."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any, cast

import botocore.exceptions as bce
from botocore import UNSIGNED
from botocore.config import Config as BotoConfig

from imds_proxy.aws import profiles
from imds_proxy.config.roles import DEFAULT_REGION, RoleSpec
from imds_proxy.errors import SourceCredentialsMissing

if TYPE_CHECKING:
    from mypy_boto3_sts import STSClient as STSClient  # re-exported for the other sts modules
else:
    STSClient = Any

#: STS answers in well under a second; a stuck connection must not hold a refresh forever.
#: Requests never wait on this (the engine bounds their wait); it bounds one background
#: refresh, which starts `lead` (5 min) early, to 3 × (3 s + 5 s) plus botocore's jittered
#: backoff, so several refreshes fit before served credentials drop under refresh_ahead.
#: Standard mode retries throttling and transient errors; `total_max_attempts: 3` is 3 calls
#: in all (measured: tests/test_sts_wire.py). botocore's `max_attempts: 3` would mean 4.
_CONNECT_TIMEOUT, _READ_TIMEOUT, STS_CALLS_PER_ATTEMPT = 3, 5, 3
_BOTO_CONFIG = BotoConfig(
    connect_timeout=_CONNECT_TIMEOUT,
    read_timeout=_READ_TIMEOUT,
    retries={"mode": "standard", "total_max_attempts": STS_CALLS_PER_ATTEMPT},
)
#: AssumeRoleWithWebIdentity is not signed: the token is the proof.
_UNSIGNED_CONFIG = _BOTO_CONFIG.merge(BotoConfig(signature_version=UNSIGNED))

ClientFactory = Callable[[RoleSpec], STSClient]
#: A client like the first (same endpoint, region) signing with the keys given.
KeyedClientFactory = Callable[[STSClient, str, str, str], STSClient]


def default_client(spec: RoleSpec) -> STSClient:
    """An STS client on the role's source credentials (profiles.sts_session). Regional
    endpoint when a region is set (protocol.md §6)."""
    try:
        session = profiles.sts_session(spec)
        region = spec.region or session.get_config_variable("region") or DEFAULT_REGION
    except bce.ProfileNotFound:
        raise SourceCredentialsMissing(
            f"source profile {spec.source_profile!r} is not in the AWS config files; "
            "check --source-profile or AWS_CONFIG_FILE"
        ) from None
    config = _UNSIGNED_CONFIG if spec.web_identity_token_file else _BOTO_CONFIG
    client = session.create_client(
        "sts", region_name=region, endpoint_url=spec.sts_endpoint_url, config=config
    )
    return cast("STSClient", client)


def client_like(base: STSClient, access_key_id: str, secret: str, token: str) -> STSClient:
    """A client to the same STS endpoint and region as `base`, signing with the keys given
    (an MFA session's, or the keys of the role a chained role is assumed from)."""
    client = profiles.explicit_session().create_client(
        "sts",
        region_name=base.meta.region_name,
        endpoint_url=base.meta.endpoint_url,
        aws_access_key_id=access_key_id,
        aws_secret_access_key=secret,
        aws_session_token=token,
        config=_BOTO_CONFIG,
    )
    return cast("STSClient", client)
