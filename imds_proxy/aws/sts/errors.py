"""STS's failures as our error types: botocore's exceptions and AWS's error codes mapped to a
message that says which side refused and what to do, with AWS's own words passed on."""

from __future__ import annotations

import re

import botocore.exceptions as bce

from imds_proxy.config.roles import RoleSpec
from imds_proxy.errors import (
    AssumeRoleDenied,
    DurationTooLong,
    MfaRequired,
    SourceCredentialsInvalid,
    SourceCredentialsMissing,
    SourceError,
)

#: STS refusing our own (source) credentials: expired, revoked or mistyped keys.
_INVALID_SOURCE = {
    "InvalidClientTokenId",
    "SignatureDoesNotMatch",
    "ExpiredToken",
    "ExpiredTokenException",
    "UnrecognizedClientException",
    "InvalidAccessKeyId",
}
#: STS's refusals of a web identity token; the token file is re-read at the next attempt.
_BAD_WEB_TOKEN = {
    "InvalidIdentityToken",
    "ExpiredTokenException",
    "IDPRejectedClaim",
    "IDPCommunicationError",
}
#: "User: arn:aws:iam::111122223333:user/Bob is not authorized to perform: ..." (AWS and moto).
_CALLER = re.compile(r"User: (\S+) is not authorized to perform")


def classify(error: Exception, spec: RoleSpec) -> SourceError:
    """Turn a botocore failure into one of our error types, with AWS's message passed on."""
    role = spec.role_arn
    if isinstance(error, bce.NoCredentialsError | bce.PartialCredentialsError):
        where = f"profile {spec.source_profile!r}" if spec.source_profile else "boto3's default chain"
        return SourceCredentialsMissing(
            f"no credentials to call STS with (looked in {where}); configure AWS credentials "
            "(aws configure, AWS_PROFILE, or --source-profile)"
        )
    if isinstance(error, bce.SSOError | bce.TokenRetrievalError):
        login = f"aws sso login --profile {spec.source_profile}" if spec.source_profile else "aws sso login"
        return SourceCredentialsInvalid(
            f"the SSO session behind the source credentials is not usable ({error}); run `{login}`"
        )
    if isinstance(error, bce.ProfileNotFound | bce.CredentialRetrievalError | bce.InvalidConfigError):
        return SourceCredentialsMissing(f"cannot load our own credentials: {error}")
    if isinstance(error, bce.EndpointConnectionError | bce.ConnectTimeoutError | bce.ReadTimeoutError):
        return SourceError(f"cannot reach STS ({error}); check the network or --region")
    if not isinstance(error, bce.ClientError):
        return SourceError(f"AssumeRole {role} failed: {type(error).__name__}: {error}")
    code = error.response.get("Error", {}).get("Code", "Unknown")
    message = error.response.get("Error", {}).get("Message", "")
    aws = f"(AWS says: {code}: {message})"
    if spec.web_identity_token_file and code in _BAD_WEB_TOKEN:
        return SourceError(
            f"STS refused the web identity token in {spec.web_identity_token_file} {aws}; "
            "it is read again at the next attempt"
        )
    if code in _INVALID_SOURCE:
        return SourceCredentialsInvalid(
            f"STS rejected our own credentials {aws}; refresh or replace the source credentials"
        )
    if code == "AccessDenied" and spec.mfa_serial and "multifactor" in message.lower().replace(" ", ""):
        return MfaRequired(
            f"STS refused the MFA code for {spec.mfa_serial} {aws}; run `imds-proxy mfa` with a fresh code"
        )
    if code == "AccessDenied":
        return _denied(message, spec, aws)
    if code == "ValidationError" and "DurationSeconds" in message:
        return DurationTooLong(
            f"duration {spec.duration}s is above the MaxSessionDuration of role {role} {aws}; lower "
            f"duration to the role's maximum (`aws iam get-role --role-name {spec.name} --query "
            "Role.MaxSessionDuration` shows it; 3600 unless raised)"
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
        why = f"{role} requires MFA: set mfa_serial for it"
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
