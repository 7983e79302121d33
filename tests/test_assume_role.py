"""The full AssumeRole surface reaches STS (as moto's STS recorded it), one cache entry per
distinct parameter set, role chaining clamped instead of failing, and errors a human can act on."""

from __future__ import annotations

import json
import logging
import random
from typing import Any

import botocore.exceptions as bce
import pytest

from imds_proxy import config, errors
from imds_proxy.aws.sts import CHAINED_MAX_DURATION, AssumeRoleSource, classify
from imds_proxy.engine.policy import RefreshPolicy
from imds_proxy.engine.refresh import CredentialEngine

from conftest import StsRequests
from fakes import ISSUED, FakeClock, FakeSts

POLICY = {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "s3:List*", "Resource": "*"}]}


def moto_sts(local_aws: Any) -> Any:
    return lambda _spec: local_aws.client("sts")


async def test_every_assume_role_parameter_reaches_sts(local_aws: Any, sts_requests: StsRequests) -> None:
    spec = config.build(
        {
            "role_arn": local_aws.role_arn,
            "role_session_name": "every-param",
            "duration": 1800,
            "external_id": "ext-7",
            "policy": json.dumps(POLICY),
            "policy_arns": [
                "arn:aws:iam::aws:policy/ReadOnlyAccess",
                "arn:aws:iam::123456789012:policy/Extra",
            ],
            "tags": {"team": "blue", "cost-centre": "42"},
            "transitive_tag_keys": ["team"],
            "source_identity": "alice",
        }
    ).role
    creds = await AssumeRoleSource(spec, FakeClock(), moto_sts(local_aws)).fetch()
    ISSUED.update((creds.secret_access_key, creds.session_token))
    [sent] = sts_requests("AssumeRole")
    assert sent["RoleArn"] == local_aws.role_arn
    assert sent["RoleSessionName"] == "every-param"
    assert sent["DurationSeconds"] == "1800"
    assert sent["ExternalId"] == "ext-7"
    assert json.loads(sent["Policy"]) == POLICY
    assert sent["PolicyArns.member.1.arn"] == "arn:aws:iam::aws:policy/ReadOnlyAccess"
    assert sent["PolicyArns.member.2.arn"] == "arn:aws:iam::123456789012:policy/Extra"
    tags = {sent[f"Tags.member.{i}.Key"]: sent[f"Tags.member.{i}.Value"] for i in (1, 2)}
    assert tags == {"team": "blue", "cost-centre": "42"}
    assert sent["TransitiveTagKeys.member.1"] == "team"
    assert sent["SourceIdentity"] == "alice"
    assert "TokenCode" not in sent and "SerialNumber" not in sent
    assert creds.role_arn == local_aws.role_arn


async def test_roles_differing_only_by_external_id_get_separate_cache_entries(local_aws: Any) -> None:
    from moto.sts.models import sts_backends

    clock = FakeClock()
    specs = {
        name: config.build(
            {"role_arn": local_aws.role_arn, "role_session_name": "same", "external_id": ext}
        ).role
        for name, ext in (("one", "ext-one"), ("two", "ext-two"))
    }
    sources = {name: AssumeRoleSource(spec, clock, moto_sts(local_aws)) for name, spec in specs.items()}
    engine = CredentialEngine(sources, RefreshPolicy(), clock, rng=random.Random(1))
    one, two = await engine.get("one"), await engine.get("two")
    ISSUED.update((one.secret_access_key, one.session_token, two.secret_access_key, two.session_token))
    assert one.access_key_id != two.access_key_id
    assert await engine.get("one") is one and await engine.get("two") is two  # each cached on its own
    assert engine.status("one").fetches == engine.status("two").fetches == 1
    recorded = {r.access_key_id: r.external_id for r in sts_backends["123456789012"]["aws"].assumed_roles}
    assert recorded[one.access_key_id] == "ext-one" and recorded[two.access_key_id] == "ext-two"


def chaining_error() -> bce.ClientError:
    message = (
        "The requested DurationSeconds exceeds the 1 hour session limit for roles assumed by role chaining."
    )
    return bce.ClientError({"Error": {"Code": "ValidationError", "Message": message}}, "AssumeRole")


async def test_a_known_chain_is_clamped_to_one_hour_with_a_warning(caplog: pytest.LogCaptureFixture) -> None:
    clock = FakeClock()
    sts = FakeSts(clock)
    spec = config.build({"role_arn": "arn:aws:iam::123456789012:role/r", "duration": 7200}).role
    source = AssumeRoleSource(spec, clock, lambda _s: sts, chained=True)
    await source.fetch()
    assert sts.calls("AssumeRole")[0]["DurationSeconds"] == CHAINED_MAX_DURATION
    assert any("role chaining" in r.getMessage() and r.levelno == logging.WARNING for r in caplog.records)


async def test_sts_refusing_a_chained_duration_is_clamped_and_retried(
    caplog: pytest.LogCaptureFixture,
) -> None:
    clock = FakeClock()
    sts = FakeSts(clock)
    spec = config.build({"role_arn": "arn:aws:iam::123456789012:role/r", "duration": 7200}).role
    source = AssumeRoleSource(spec, clock, lambda _s: sts)  # chaining not known in advance

    real = sts.assume_role
    refusals = [chaining_error()]

    def first_refuses(**params: Any) -> dict[str, Any]:
        if refusals:
            sts.log.append({"operation": "AssumeRole", **params})
            raise refusals.pop()
        return real(**params)

    sts.assume_role = first_refuses  # type: ignore[method-assign]
    creds = await source.fetch()
    assert [c["DurationSeconds"] for c in sts.calls("AssumeRole")] == [7200, 3600]
    assert creds.remaining(clock()).total_seconds() == 3600
    assert any("role chaining" in r.getMessage() for r in caplog.records)
    await source.fetch()  # and it stays clamped
    assert sts.calls("AssumeRole")[-1]["DurationSeconds"] == 3600


async def test_max_session_duration_refusal_is_not_retried_and_names_the_fix() -> None:
    clock = FakeClock()
    sts = FakeSts(clock)
    message = "The requested DurationSeconds exceeds the MaxSessionDuration set for this role."
    sts.fail_assume = bce.ClientError(
        {"Error": {"Code": "ValidationError", "Message": message}}, "AssumeRole"
    )
    spec = config.build({"role_arn": "arn:aws:iam::123456789012:role/deploy", "duration": 7200}).role
    with pytest.raises(errors.DurationTooLong) as raised:
        await AssumeRoleSource(spec, clock, lambda _s: sts).fetch()
    assert len(sts.calls("AssumeRole")) == 1
    text = str(raised.value)
    assert "MaxSessionDuration" in text and "aws iam get-role --role-name deploy" in text


@pytest.mark.parametrize(
    ("error", "values", "kind", "says"),
    [
        (
            bce.ClientError(
                {
                    "Error": {
                        "Code": "AccessDenied",
                        "Message": "MultiFactorAuthentication failed with invalid MFA",
                    }
                },
                "GetSessionToken",
            ),
            {"mfa_serial": "arn:aws:iam::123456789012:mfa/alice"},
            errors.MfaRequired,
            "imds-proxy mfa",
        ),
        (
            bce.ClientError(
                {"Error": {"Code": "InvalidIdentityToken", "Message": "Incorrect token audience"}},
                "AssumeRoleWithWebIdentity",
            ),
            {"web_identity_token_file": "/var/run/token"},
            errors.SourceError,
            "read again at the next attempt",
        ),
        (
            bce.SSOTokenLoadError(error_msg="Token for x does not exist"),
            {"source_profile": "sso-dev"},
            errors.SourceCredentialsInvalid,
            "aws sso login --profile sso-dev",
        ),
        (
            bce.CredentialRetrievalError(provider="custom-process", error_msg="exit status 1"),
            {"source_profile": "proc"},
            errors.SourceCredentialsMissing,
            "custom-process",
        ),
    ],
)
def test_new_sources_fail_with_errors_that_say_what_to_do(
    error: Exception, values: dict[str, str], kind: type[errors.SourceError], says: str
) -> None:
    spec = config.build({"role_arn": "arn:aws:iam::123456789012:role/r", **values}).role
    mapped = classify(error, spec)
    assert type(mapped) is kind
    assert says in str(mapped) and "\n" not in str(mapped)


def test_a_refused_web_identity_token_is_retried_later() -> None:
    error = bce.ClientError({"Error": {"Code": "ExpiredTokenException", "Message": "expired"}}, "x")
    spec = config.build(
        {"role_arn": "arn:aws:iam::123456789012:role/r", "web_identity_token_file": "/t"}
    ).role
    assert classify(error, spec).retryable  # the file is rotated in place: a later read may work
