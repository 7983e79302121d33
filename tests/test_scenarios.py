"""Scenario files: the built-in ones are valid, and a broken file is one line naming file, key and fix."""

from __future__ import annotations

import json

import pytest

from imds_proxy.errors import ConfigError, ScenarioError
from imds_proxy.sandbox.scenarios import file as scenario_file
from imds_proxy.sandbox.scenarios import model as scenarios
from imds_proxy.sandbox.scenarios.file import parse

TRUST_EC2 = (
    '{"Statement": {"Effect": "Allow", "Principal": {"Service": "ec2.amazonaws.com"}, '
    '"Action": "sts:AssumeRole"}}'
)
READ = '{"Statement": [{"Effect": "Allow", "Action": "s3:GetObject", "Resource": "arn:aws:s3:::b/*"}]}'
MINIMAL = f"""
description = "a role for tests"
[serve]
role = "r"
[roles.r]
trust = '{TRUST_EC2}'
[roles.r.policies]
read = '{READ}'
"""


def broken(text: str, variant: str | None = None) -> str:
    """The one-line error parse gives for `text`, checked for shape."""
    with pytest.raises(ScenarioError) as caught:
        parse(text, "/tmp/s.toml", "s", variant)
    line = str(caught.value)
    assert "\n" not in line
    assert line.startswith("scenario error: /tmp/s.toml: ")
    return line.removeprefix("scenario error: /tmp/s.toml: ")


def builtins() -> list[tuple[str, str | None]]:
    out: list[tuple[str, str | None]] = []
    for name in scenario_file.builtin_names():
        out += [(name, None), *((name, v) for v in scenario_file.load(name).variants)]
    return out


@pytest.mark.parametrize(("name", "variant"), builtins())
def test_every_builtin_scenario_and_variant_is_valid(name: str, variant: str | None) -> None:
    s = scenario_file.load(name, variant)
    assert s.role in s.roles
    assert s.try_allowed or s.try_denied


def test_the_builtin_scenarios_are_listed_default_first() -> None:
    assert scenario_file.builtin_names() == ["photos", "cross-account", "untrusted"]


def test_photos_role_is_assumed_by_ec2_through_an_instance_profile() -> None:
    s = scenario_file.load("photos")
    assert s.assumed_by == scenarios.EC2 and s.caller is None
    assert [p.role for p in s.instance_profiles] == ["photos-reader"]
    trust = json.loads(s.role.trust)["Statement"]
    assert trust == [
        {"Effect": "Allow", "Principal": {"Service": "ec2.amazonaws.com"}, "Action": "sts:AssumeRole"}
    ]
    assert s.role.managed_policies == ("arn:aws:iam::123456789012:policy/photos-read-only",)


def test_cross_account_spans_two_accounts_and_calls_sts_as_bob() -> None:
    s = scenario_file.load("cross-account")
    assert s.accounts == ("111122223333", "444455556666")
    assert s.caller is not None and s.caller.arn == "arn:aws:iam::111122223333:user/Bob"
    assert s.role.arn == "arn:aws:iam::444455556666:role/foo"


def test_a_variant_replaces_only_the_keys_it_gives() -> None:
    base = scenario_file.load("cross-account")
    no_permission = scenario_file.load("cross-account", "caller-lacks-permission")
    assert no_permission.caller is not None and dict(no_permission.caller.policies) == {}
    assert no_permission.caller.account == "111122223333"
    assert no_permission.role == base.role
    untrusting = scenario_file.load("cross-account", "trust-names-someone-else")
    assert "user/Alice" in untrusting.role.trust and "user/Bob" not in untrusting.role.trust
    assert untrusting.role.policies == base.role.policies


def test_untrusted_keeps_serving_when_the_role_cannot_be_assumed() -> None:
    s = scenario_file.load("untrusted")
    assert s.if_denied == "serve-error-document"
    assert "ec2.amazonaws.com" not in s.role.trust


def test_a_minimal_file_parses_with_defaults() -> None:
    s = parse(MINIMAL, "/tmp/s.toml", "s")
    assert s.role.arn == "arn:aws:iam::123456789012:role/r"
    assert (s.region, s.assumed_by, s.if_denied) == ("us-east-1", scenarios.EC2, "exit")


@pytest.mark.parametrize(
    ("text", "says"),
    [
        (MINIMAL + "[roles.s\n", "(file): is not valid TOML"),
        (MINIMAL.replace('description = "a role for tests"', ""), "description: is missing"),
        (MINIMAL + "[rolez.x]\n", "rolez: is not a scenario key"),
        (MINIMAL.replace(TRUST_EC2, '{"Statement": ['), "roles.r.trust: is not valid JSON"),
        (
            MINIMAL.replace('"Principal": {"Service": "ec2.amazonaws.com"}, ', ""),
            "roles.r.trust: statement 1 has no Principal",
        ),
        (
            MINIMAL.replace('"Allow", "Principal"', '"allow", "Principal"'),
            "roles.r.trust: statement 1 has Effect 'allow'",
        ),
        (
            MINIMAL.replace(', "Resource": "arn:aws:s3:::b/*"', ""),
            "roles.r.policies.read: statement 1 has no Resource",
        ),
        (
            MINIMAL + '[roles.s]\naccount = "42"\ntrust = "{}"\n',
            "roles.s.account: '42' is not a 12-digit account id",
        ),
        (MINIMAL.replace('role = "r"', 'role = "q"'), "serve.role: 'q' is not in [roles]"),
        (
            MINIMAL.replace('role = "r"', 'role = "r"\nassumed_by = "Carol"'),
            "serve.assumed_by: 'Carol' is neither",
        ),
        (
            MINIMAL.replace('role = "r"', 'role = "r"\nif_denied = "retry"'),
            "serve.if_denied: 'retry' is not allowed",
        ),
        (
            MINIMAL.replace("[roles.r.policies]", 'managed_policies = ["nope"]\n[roles.r.policies]'),
            "roles.r.managed_policies[0]: 'nope' is not a policy of account",
        ),
        (MINIMAL + "[users.imds-proxy-ec2]\n", "users.imds-proxy-ec2: imds-proxy-ec2 is reserved"),
        (MINIMAL + "[buckets.B]\n", "buckets.B: 'B' is not a bucket name"),
        (MINIMAL + '[[calls]]\nservice = "ssm"\n', "calls[0].operation: is missing"),
    ],
)
def test_a_broken_file_names_the_key_and_the_problem(text: str, says: str) -> None:
    assert says in broken(text)


def test_a_mistake_a_variant_makes_is_reported_in_the_variant() -> None:
    text = MINIMAL + '[variants.v]\ndescription = "d"\n[variants.v.roles.r]\ntrust = "not json"\n'
    assert parse(text, "/tmp/s.toml", "s").variants == {"v": "d"}  # the base is fine
    assert broken(text, "v").startswith("variants.v.roles.r.trust: is not valid JSON")


def test_an_unknown_variant_names_the_known_ones() -> None:
    text = MINIMAL + '[variants.v]\ndescription = "d"\n'
    assert broken(text, "w") == "variants: there is no variant 'w'; use one of: v"


def test_an_unknown_builtin_name_lists_the_builtins() -> None:
    with pytest.raises(ConfigError, match="use one of: photos, cross-account, untrusted"):
        scenario_file.load("phtos")
