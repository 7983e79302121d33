"""boto3-backed Sources: AssumeRole through STS, always off the event loop. The only boto3 importer."""

from __future__ import annotations

import asyncio
import logging
import re
from collections.abc import Callable, Hashable
from typing import TYPE_CHECKING, Any

import boto3
import botocore.exceptions as bce
from botocore.config import Config as BotoConfig

from imds_proxy.config import RoleSpec
from imds_proxy.credentials import Clock, Credentials, account_of
from imds_proxy.errors import (
    AssumeRoleDenied,
    DurationTooLong,
    SourceCredentialsInvalid,
    SourceCredentialsMissing,
    SourceError,
)

if TYPE_CHECKING:
    from mypy_boto3_sts import STSClient
else:
    STSClient = Any

log = logging.getLogger("imds_proxy.sts")

#: STS answers in well under a second; a stuck connection must not hold a refresh forever.
#: botocore's own retries cover throttling and transient errors (standard mode, 3 attempts).
_BOTO_CONFIG = BotoConfig(connect_timeout=5, read_timeout=10, retries={"mode": "standard", "max_attempts": 3})
_INVALID_SOURCE = {
    "InvalidClientTokenId",
    "SignatureDoesNotMatch",
    "ExpiredToken",
    "ExpiredTokenException",
    "UnrecognizedClientException",
    "InvalidAccessKeyId",
}

ClientFactory = Callable[[RoleSpec], STSClient]
#: "User: arn:aws:iam::111122223333:user/Bob is not authorized to perform: ..." (AWS and moto).
_CALLER = re.compile(r"User: (\S+) is not authorized to perform")


def default_client(spec: RoleSpec) -> STSClient:
    """An STS client on our own credentials: `source_profile`, else boto3's default chain.
    Regional endpoint when a region is set (protocol.md §6)."""
    try:
        session = boto3.Session(profile_name=spec.source_profile)
    except bce.ProfileNotFound:
        raise SourceCredentialsMissing(
            f"source profile {spec.source_profile!r} is not in the AWS config files; "
            "check --source-profile or AWS_CONFIG_FILE"
        ) from None
    region = spec.region or session.region_name or "us-east-1"
    return session.client("sts", region_name=region, endpoint_url=spec.sts_endpoint_url, config=_BOTO_CONFIG)


def classify(error: Exception, spec: RoleSpec) -> SourceError:
    """Turn a botocore failure into one of our error types, with AWS's message passed on."""
    role = spec.role_arn
    if isinstance(error, bce.NoCredentialsError | bce.PartialCredentialsError):
        where = f"profile {spec.source_profile!r}" if spec.source_profile else "boto3's default chain"
        return SourceCredentialsMissing(
            f"no credentials to call STS with (looked in {where}); configure AWS credentials "
            "(aws configure, AWS_PROFILE, or --source-profile)"
        )
    if isinstance(error, bce.ProfileNotFound | bce.CredentialRetrievalError):
        return SourceCredentialsMissing(f"cannot load our own credentials: {error}")
    if isinstance(error, bce.EndpointConnectionError | bce.ConnectTimeoutError | bce.ReadTimeoutError):
        return SourceError(f"cannot reach STS ({error}); check the network or --region")
    if not isinstance(error, bce.ClientError):
        return SourceError(f"AssumeRole {role} failed: {type(error).__name__}: {error}")
    code = error.response.get("Error", {}).get("Code", "Unknown")
    message = error.response.get("Error", {}).get("Message", "")
    aws = f"(AWS says: {code}: {message})"
    if code in _INVALID_SOURCE:
        return SourceCredentialsInvalid(
            f"STS rejected our own credentials {aws}; refresh or replace the source credentials"
        )
    if code == "AccessDenied":
        return _denied(message, spec, aws)
    if code == "ValidationError" and "DurationSeconds" in message:
        return DurationTooLong(
            f"duration {spec.duration}s is above what role {role} allows {aws}; lower --duration "
            "to the role's MaxSessionDuration (3600 unless raised; at most 3600 when chaining roles)"
        )
    if code == "RegionDisabledException":
        err = SourceError(f"STS is not activated in this region {aws}; pick another --region")
        err.retryable = False
        return err
    return SourceError(f"AssumeRole {role} failed {aws}")


def _denied(message: str, spec: RoleSpec, aws: str) -> AssumeRoleDenied:
    """Name which side refused. AWS's message says it (the policy type) for requests inside one
    account or organization, and so does the sandbox's local AWS; otherwise we list what can refuse."""
    role = spec.role_arn
    text = message.lower()
    named = _CALLER.match(message)
    who = named.group(1) if named else "the caller"
    if "identity-based policy" in text:
        if "explicit deny" in text:
            why = f"a Deny in the permissions policy of {who} refuses sts:AssumeRole on {role}: remove it"
        else:
            caller = f"the caller ({who})" if named else who
            why = (
                f"{caller} is not allowed sts:AssumeRole on {role}: add it to the caller's permissions policy"
            )
    elif "resource-based policy" in text or "trust" in text:
        if "explicit deny" in text:
            why = f"the trust policy of {role} denies {who}: remove that Deny"
        else:
            why = f"the trust policy of {role} does not trust {who}: add it as a principal"
    elif "multifactor" in text or "mfa" in text:
        why = f"{role} requires MFA"
    elif spec.external_id:
        why = (
            f"AssumeRole {role} was refused: check that the ExternalId matches the role's trust "
            "policy, that the trust policy trusts the caller, and that the caller is allowed sts:AssumeRole"
        )
    else:
        why = (
            f"AssumeRole {role} was refused: either the caller is not allowed sts:AssumeRole on it, "
            "or its trust policy does not trust the caller (or requires an ExternalId or MFA)"
        )
    return AssumeRoleDenied(f"{why} {aws}")


class AssumeRoleSource:
    """AssumeRole with the spec's parameters; the boto3 client is made once (clients are
    thread-safe, sessions are not) and every call runs in a worker thread."""

    def __init__(self, spec: RoleSpec, clock: Clock, client_factory: ClientFactory = default_client):
        self.spec = spec
        self._clock = clock
        self._factory = client_factory
        self._client: STSClient | None = None

    @property
    def role_arn(self) -> str:
        return self.spec.role_arn

    @property
    def cache_key(self) -> Hashable:
        return self.spec

    async def fetch(self) -> Credentials:
        return await asyncio.to_thread(self._assume)

    def _assume(self) -> Credentials:
        spec = self.spec
        params: dict[str, Any] = {
            "RoleArn": spec.role_arn,
            "RoleSessionName": spec.session_name,
            "DurationSeconds": spec.duration,
        }
        if spec.external_id:
            params["ExternalId"] = spec.external_id
        try:
            if self._client is None:
                self._client = self._factory(spec)
            answer = self._client.assume_role(**params)
        except SourceError:
            raise
        except Exception as e:  # botocore's errors, mapped; nothing of ours is secret here
            raise classify(e, spec) from None
        c = answer["Credentials"]
        arn = answer["AssumedRoleUser"]["Arn"]
        log.info(
            "AssumeRole role=%s session=%s key=…%s expires=%s",
            spec.role_arn,
            spec.session_name,
            c["AccessKeyId"][-4:],
            c["Expiration"].strftime("%Y-%m-%dT%H:%M:%SZ"),
        )
        return Credentials(
            access_key_id=c["AccessKeyId"],
            secret_access_key=c["SecretAccessKey"],
            session_token=c["SessionToken"],
            expiration=c["Expiration"],
            last_updated=self._clock(),
            role_arn=spec.role_arn,
            account_id=account_of(arn) or spec.account_id,
        )
