"""How the sandbox's local AWS judges AssumeRole: trust policies and identity policies, as pure
functions (nothing here turns moto's enforcement on; that is process-wide)."""

from __future__ import annotations

import json
from typing import Any

from imds_proxy.sandbox.iam import ALLOW, DENY, NEUTRAL, conditions_hold, identity_decision, trust_decision

BOB = "arn:aws:iam::111122223333:user/Bob"
ROLE = "arn:aws:iam::444455556666:role/foo"
EC2 = "ec2.amazonaws.com"


def trust(*statements: dict[str, Any]) -> str:
    return json.dumps({"Version": "2012-10-17", "Statement": list(statements)})


def allow(principal: Any, **extra: Any) -> dict[str, Any]:
    return {"Effect": "Allow", "Principal": principal, "Action": "sts:AssumeRole", **extra}


def test_a_service_only_statement_trusts_the_ec2_stand_in() -> None:
    # moto 5.2 raises TypeError on this statement (`principal in None`) under enforcement.
    assert trust_decision(trust(allow({"Service": EC2})), "arn:aws:iam::1:user/x", EC2) == ALLOW
    assert trust_decision(trust(allow({"Service": ["lambda.amazonaws.com", EC2]})), "u", EC2) == ALLOW


def test_a_role_trusting_another_service_does_not_trust_ec2() -> None:
    assert trust_decision(trust(allow({"Service": "lambda.amazonaws.com"})), "u", EC2) == NEUTRAL


def test_the_ec2_stand_in_is_never_matched_as_an_aws_principal() -> None:
    stand_in = "arn:aws:iam::444455556666:user/imds-proxy-ec2"
    assert trust_decision(trust(allow({"AWS": "arn:aws:iam::444455556666:root"})), stand_in, EC2) == NEUTRAL
    assert trust_decision(trust(allow({"AWS": stand_in})), stand_in, EC2) == NEUTRAL


def test_a_service_principal_does_not_trust_a_user() -> None:
    assert trust_decision(trust(allow({"Service": EC2})), BOB, None) == NEUTRAL


def test_a_user_is_trusted_by_its_arn_its_account_and_the_account_root() -> None:
    for principal in (BOB, "111122223333", "arn:aws:iam::111122223333:root", "*", [ROLE, BOB]):
        assert trust_decision(trust(allow({"AWS": principal})), BOB, None) == ALLOW, principal
    assert trust_decision(trust(allow("*")), BOB, None) == ALLOW


def test_a_user_is_not_trusted_by_an_arn_that_merely_contains_its_own() -> None:
    # moto matches a string principal with `in`, i.e. as a substring.
    assert trust_decision(trust(allow({"AWS": BOB + "by"})), BOB, None) == NEUTRAL
    assert trust_decision(trust(allow({"AWS": "arn:aws:iam::999999999999:root"})), BOB, None) == NEUTRAL


def test_a_role_session_is_trusted_by_its_role_arn() -> None:
    session = "arn:aws:sts::444455556666:assumed-role/foo/s1"
    assert trust_decision(trust(allow({"AWS": ROLE})), session, None) == ALLOW
    assert (
        trust_decision(trust(allow({"AWS": "arn:aws:iam::444455556666:role/team/foo"})), session, None)
        == ALLOW
    )


def test_an_explicit_deny_in_the_trust_policy_wins() -> None:
    denied = {"Effect": "Deny", "Principal": {"AWS": BOB}, "Action": "sts:*"}
    assert trust_decision(trust(allow({"AWS": "111122223333"}), denied), BOB, None) == DENY


def test_statements_about_other_actions_do_not_count() -> None:
    tag = {"Effect": "Allow", "Principal": {"AWS": BOB}, "Action": "sts:TagSession"}
    assert trust_decision(trust(tag), BOB, None) == NEUTRAL
    assert trust_decision(trust(allow({"AWS": BOB}) | {"Action": "sts:Assume*"}), BOB, None) == ALLOW


def test_an_external_id_condition_is_checked() -> None:
    doc = trust(allow({"AWS": BOB}, Condition={"StringEquals": {"sts:ExternalId": ["abc123", "def456"]}}))
    assert trust_decision(doc, BOB, None, {"sts:ExternalId": "def456"}) == ALLOW
    assert trust_decision(doc, BOB, None, {"sts:ExternalId": "wrong"}) == NEUTRAL
    assert trust_decision(doc, BOB, None, {}) == NEUTRAL  # moto lets this one through


def test_a_missing_condition_key_fails_except_for_negated_and_if_exists_operators() -> None:
    assert not conditions_hold({"StringLike": {"aws:PrincipalArn": "arn:*"}}, {})
    assert conditions_hold({"StringNotEquals": {"sts:ExternalId": "x"}}, {})
    assert conditions_hold({"StringEqualsIfExists": {"sts:ExternalId": "x"}}, {})
    assert conditions_hold({"Null": {"sts:ExternalId": "true"}}, {})
    assert not conditions_hold({"Null": {"sts:ExternalId": "true"}}, {"sts:ExternalId": "x"})


def test_an_operator_the_sandbox_does_not_model_never_grants() -> None:
    assert not conditions_hold({"IpAddress": {"aws:SourceIp": "10.0.0.0/8"}}, {"aws:SourceIp": "10.1.2.3"})


def policy(effect: str, resource: str) -> str:
    return json.dumps({"Statement": [{"Effect": effect, "Action": "sts:AssumeRole", "Resource": resource}]})


def test_the_callers_policies_must_allow_assume_role_on_that_role() -> None:
    assert identity_decision([policy("Allow", ROLE)], ROLE) == ALLOW
    assert identity_decision([policy("Allow", "arn:aws:iam::444455556666:role/*")], ROLE) == ALLOW
    assert identity_decision([policy("Allow", "arn:aws:iam::444455556666:role/bar")], ROLE) == NEUTRAL
    assert identity_decision([], ROLE) == NEUTRAL


def test_a_deny_in_the_callers_policies_wins() -> None:
    assert identity_decision([policy("Allow", "*"), policy("Deny", ROLE)], ROLE) == DENY
