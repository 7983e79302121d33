"""AssumeRole through moto's STS, and how STS's refusals become errors a human can act on."""

from __future__ import annotations

from typing import Any

import botocore.exceptions as bce
import pytest

from imds_proxy import config, errors
from imds_proxy.aws.sts import AssumeRoleSource, classify

from fakes import FakeClock

ROLE_ARN = "arn:aws:iam::444455556666:role/foo"
SPEC = config.build({"role_arn": ROLE_ARN}).role


def client_error(code: str, message: str) -> bce.ClientError:
    return bce.ClientError({"Error": {"Code": code, "Message": message}}, "AssumeRole")


@pytest.mark.parametrize(
    ("error", "kind", "says"),
    [
        (bce.NoCredentialsError(), errors.SourceCredentialsMissing, "no credentials to call STS with"),
        (
            client_error(
                "AccessDenied",
                "User: arn:aws:iam::111122223333:user/Bob is not authorized to perform: sts:AssumeRole on "
                f"resource: {ROLE_ARN} because no identity-based policy allows the sts:AssumeRole action",
            ),
            errors.AssumeRoleDenied,
            f"the caller (arn:aws:iam::111122223333:user/Bob) is not allowed sts:AssumeRole on {ROLE_ARN}",
        ),
        (
            client_error(
                "AccessDenied",
                "User: arn:aws:iam::111122223333:user/Bob is not authorized to perform: sts:AssumeRole on "
                f"resource: {ROLE_ARN} with an explicit deny in an identity-based policy",
            ),
            errors.AssumeRoleDenied,
            "a Deny in the permissions policy of arn:aws:iam::111122223333:user/Bob refuses sts:AssumeRole",
        ),
        (
            client_error(
                "AccessDenied",
                "User: arn:aws:iam::111122223333:user/Bob is not authorized to perform: sts:AssumeRole on "
                f"resource: {ROLE_ARN} because no resource-based policy allows the sts:AssumeRole action",
            ),
            errors.AssumeRoleDenied,
            f"the trust policy of {ROLE_ARN} does not trust arn:aws:iam::111122223333:user/Bob",
        ),
        (
            client_error(  # the sandbox's local AWS, for an instance profile role that does not trust EC2
                "AccessDenied",
                "User: ec2.amazonaws.com is not authorized to perform: sts:AssumeRole on "
                f"resource: {ROLE_ARN} because no resource-based policy allows the sts:AssumeRole action",
            ),
            errors.AssumeRoleDenied,
            f"the trust policy of {ROLE_ARN} does not trust ec2.amazonaws.com: add it as a principal",
        ),
        (
            client_error(
                "AccessDenied",
                "User: arn:aws:iam::111122223333:user/Bob is not authorized to perform: sts:AssumeRole on "
                f"resource: {ROLE_ARN} with an explicit deny in a resource-based policy",
            ),
            errors.AssumeRoleDenied,
            f"the trust policy of {ROLE_ARN} denies arn:aws:iam::111122223333:user/Bob",
        ),
        (  # moto's own message, the same for both sides
            client_error("AccessDenied", "User: x is not authorized to perform: sts:AssumeRole"),
            errors.AssumeRoleDenied,
            "either the caller is not allowed sts:AssumeRole",
        ),
        (
            client_error(
                "ValidationError",
                "The requested DurationSeconds exceeds the MaxSessionDuration set for this role.",
            ),
            errors.DurationTooLong,
            "MaxSessionDuration",
        ),
        (
            client_error("InvalidClientTokenId", "The security token included in the request is invalid."),
            errors.SourceCredentialsInvalid,
            "STS rejected our own credentials",
        ),
        (
            client_error("ExpiredToken", "The security token included in the request is expired"),
            errors.SourceCredentialsInvalid,
            "refresh or replace",
        ),
        (client_error("Throttling", "Rate exceeded"), errors.SourceError, "Rate exceeded"),
        (
            bce.EndpointConnectionError(endpoint_url="https://sts.us-east-1.amazonaws.com/"),
            errors.SourceError,
            "cannot reach STS",
        ),
    ],
)
def test_sts_failures_name_the_cause(error: Exception, kind: type[errors.SourceError], says: str) -> None:
    mapped = classify(error, SPEC)
    assert type(mapped) is kind
    assert says in str(mapped)
    assert "\n" not in str(mapped)


def test_aws_message_is_passed_through() -> None:
    mapped = classify(client_error("AccessDenied", "User: arn:aws:iam::1:user/Bob is not authorized"), SPEC)
    assert "AWS says: AccessDenied: User: arn:aws:iam::1:user/Bob is not authorized" in str(mapped)


def test_denial_with_external_id_mentions_it() -> None:
    spec = config.build({"role_arn": ROLE_ARN, "external_id": "abc123"}).role
    mapped = classify(client_error("AccessDenied", "not authorized"), spec)
    assert "ExternalId" in str(mapped)


def test_throttling_is_retryable_denial_is_not() -> None:
    assert classify(client_error("Throttling", "Rate exceeded"), SPEC).retryable
    assert not classify(client_error("AccessDenied", "no"), SPEC).retryable


async def test_assume_role_against_moto_returns_the_roles_credentials(local_aws: Any) -> None:
    clock = FakeClock()
    spec = config.build({"role_arn": local_aws.role_arn, "duration": 900, "role_session_name": "t1"}).role
    source = AssumeRoleSource(spec, clock, lambda _spec: local_aws.client("sts"))
    creds = await source.fetch()
    assert creds.access_key_id.startswith("ASIA")
    assert creds.account_id == "123456789012"
    assert creds.role_arn == local_aws.role_arn
    assert creds.last_updated == clock()
    assert source.cache_key == spec
    from fakes import ISSUED

    ISSUED.update((creds.secret_access_key, creds.session_token))


def test_cache_key_covers_every_parameter() -> None:
    a = config.build({"role_arn": ROLE_ARN, "external_id": "one1"}).role
    b = config.build({"role_arn": ROLE_ARN, "external_id": "two2"}).role
    assert a != b and hash(a) != hash(b)


def test_credentials_repr_has_no_secrets() -> None:
    import asyncio

    from fakes import FakeSource

    creds = asyncio.run(FakeSource(FakeClock()).fetch())
    assert creds.secret_access_key not in repr(creds)
    assert creds.session_token not in repr(creds)
