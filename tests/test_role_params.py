"""A role's full AssumeRole surface in the config: validation against STS's limits, profile
layering, and a cache key (RoleSpec) that changes with every parameter."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any

import pytest

from imds_proxy import config
from imds_proxy.config.role_params import expand_session_name
from imds_proxy.config.roles import SESSION_NAME_RE, RoleSpec
from imds_proxy.errors import ConfigError

from fakes import ROLE_ARN

POLICY = {
    "Version": "2012-10-17",
    "Statement": [{"Effect": "Allow", "Action": "s3:GetObject", "Resource": "*"}],
}


def role(**values: Any) -> RoleSpec:
    return config.build({"role_arn": ROLE_ARN, **values}).role


def test_every_parameter_lands_in_the_spec(tmp_path: Path) -> None:
    spec = role(
        external_id="ext-1",
        policy=json.dumps(POLICY, indent=4),
        policy_arns=["arn:aws:iam::aws:policy/ReadOnlyAccess"],
        tags={"team": "blue", "Project": "x"},
        transitive_tag_keys=["team"],
        source_identity="alice",
        mfa_serial="arn:aws:iam::123456789012:mfa/alice",
    )
    assert spec.policy == json.dumps(POLICY, separators=(",", ":"))  # compact: counts toward 2048
    assert spec.policy_arns == ("arn:aws:iam::aws:policy/ReadOnlyAccess",)
    assert spec.tags == (("Project", "x"), ("team", "blue"))
    assert spec.transitive_tag_keys == ("team",)
    assert spec.source_identity == "alice"
    assert spec.mfa_serial == "arn:aws:iam::123456789012:mfa/alice"
    assert spec.mfa_duration == 43200


@pytest.mark.parametrize(
    ("change", "value"),
    [
        ("external_id", "other"),
        ("role_session_name", "other-session"),
        ("duration", 1800),
        ("policy", json.dumps({"Version": "2012-10-17", "Statement": []})),
        ("policy_arns", ["arn:aws:iam::aws:policy/Other"]),
        ("tags", {"team": "red"}),
        ("transitive_tag_keys", []),
        ("source_identity", "bob"),
        ("mfa_serial", "arn:aws:iam::123456789012:mfa/bob"),
        ("source_profile", "other"),
        ("region", "eu-west-1"),
    ],
)
def test_the_cache_key_changes_with_every_parameter(change: str, value: Any) -> None:
    base: dict[str, Any] = {
        "external_id": "ext-1",
        "role_session_name": "s-1",
        "policy": json.dumps(POLICY),
        "policy_arns": ["arn:aws:iam::aws:policy/ReadOnlyAccess"],
        "tags": {"team": "blue"},
        "transitive_tag_keys": ["team"],
        "source_identity": "alice",
        "mfa_serial": "arn:aws:iam::123456789012:mfa/alice",
    }
    a, b = role(**base), role(**{**base, change: value})
    assert a != b and hash(a) != hash(b)
    assert role(**base) == a and hash(role(**base)) == hash(a)  # and it is stable


def test_policy_can_be_a_toml_table_or_a_file(tmp_path: Path) -> None:
    file = tmp_path / "policy.json"
    file.write_text(json.dumps(POLICY))
    assert (
        role(policy=POLICY).policy
        == role(policy_file=str(file)).policy
        == json.dumps(POLICY, separators=(",", ":"))
    )


@pytest.mark.parametrize(
    ("values", "key", "says"),
    [
        ({"policy": "{not json"}, "policy", "not valid JSON"),
        ({"policy": "[1]"}, "policy", "not a JSON object"),
        ({"policy": json.dumps({"Statement": ["x" * 2100]})}, "policy", "STS allows 2048"),
        ({"policy": json.dumps({"s": "\u4e2d"})}, "policy", "characters STS refuses"),
        ({"policy": "{}", "policy_file": "/x"}, "policy_file", "given with policy"),
        ({"policy_file": "/no/such/file.json"}, "policy_file", "cannot read"),
        ({"policy_arns": ["arn:aws:iam::123456789012:role/x"]}, "policy_arns", "not a managed policy"),
        ({"policy_arns": [f"arn:aws:iam::aws:policy/p{i}" for i in range(11)]}, "policy_arns", "at most 10"),
        ({"tags": ["novalue"]}, "tags", "not KEY=VALUE"),
        ({"tags": {"a": "1", "A": "2"}}, "tags", "given twice"),
        ({"tags": {"k": 5}}, "tags", "not a string"),
        ({"tags": {"bad\x00key": "v"}}, "tags", "limits"),
        ({"tags": {f"k{i}": "v" for i in range(51)}}, "tags", "at most 50"),
        ({"tags": {"a": "1"}, "transitive_tag_keys": ["b"]}, "transitive_tag_keys", "not one of the tags"),
        ({"source_identity": "a"}, "source_identity", "pattern"),
        ({"source_identity": "has space"}, "source_identity", "pattern"),
        ({"mfa_serial": "short"}, "mfa_serial", "not an MFA device"),
        ({"mfa_process": "pass otp"}, "mfa_process", "without mfa_serial"),
        ({"mfa_serial": "arn:aws:iam::1:mfa/a", "mfa_process": "'"}, "mfa_process", "not a command"),
        ({"mfa_duration": 600}, "mfa_duration", "900 to 129600"),
        ({"credential_source": "Laptop"}, "credential_source", "not allowed"),
        ({"source_profile": "a", "credential_source": "Environment"}, "credential_source", "one source"),
        ({"web_identity_token_file": "/t", "external_id": "abc"}, "external_id", "web identity"),
        ({"role_session_name": "{user}-{nope}"}, "role_session_name", "unknown placeholder {nope}"),
        ({"role_session_name": "{user"}, "role_session_name", "unbalanced"),
        ({"notify_command": "'"}, "notify_command", "not a command"),
    ],
)
def test_bad_parameters_name_the_key_and_the_fix(values: dict[str, Any], key: str, says: str) -> None:
    with pytest.raises(ConfigError) as raised:
        config.build({"role_arn": ROLE_ARN, **values})
    assert raised.value.key == key
    assert says in str(raised.value)
    assert "\n" not in str(raised.value) and raised.value.fix


def test_session_name_template_fills_user_and_host() -> None:
    assert expand_session_name("{user}-{host}", user="alice", host="laptop.example.com") == "alice-laptop"
    # Characters STS refuses become dashes; the result is cut to 64.
    assert expand_session_name("{user}@{host}", user="Jöe Bloggs", host="h") == "J-e-Bloggs@h"
    assert len(expand_session_name("{user}" * 20, user="abcdef", host="h")) == 64
    assert expand_session_name("fixed-name") == "fixed-name"


def test_session_name_template_is_expanded_in_the_config() -> None:
    spec = role(role_session_name="ci-{host}")
    assert spec.session_name.startswith("ci-") and "{" not in spec.session_name
    assert SESSION_NAME_RE.fullmatch(spec.session_name)


def test_list_keys_come_comma_separated_from_the_environment() -> None:
    cfg = config.load(
        {},
        {
            "IMDS_PROXY_ROLE_ARN": ROLE_ARN,
            "IMDS_PROXY_TAGS": "team=blue, env=dev",
            "IMDS_PROXY_POLICY_ARNS": "arn:aws:iam::aws:policy/A,arn:aws:iam::aws:policy/B",
        },
    )
    assert cfg.role.tags == (("env", "dev"), ("team", "blue"))
    assert cfg.role.policy_arns == ("arn:aws:iam::aws:policy/A", "arn:aws:iam::aws:policy/B")


PROFILES = {
    "dev": {
        "role_arn": "arn:aws:iam::111122223333:role/dev",
        "source_profile": "base",
        "external_id": "from-profile",
        "duration": "1800",
        "role_session_name": "prof-session",
        "profile": "dev",
    },
}


def reader(name: str) -> dict[str, Any]:
    if name not in PROFILES:
        raise ConfigError("profile", f"{name!r} is not in the AWS config", "check the name")
    return PROFILES[name]


def test_a_profile_gives_the_role_and_our_keys_win() -> None:
    cfg = config.build({"profile": "dev", "duration": 900}, reader)
    spec = cfg.role
    assert spec.role_arn == "arn:aws:iam::111122223333:role/dev" and cfg.roles.keys() == {"dev"}
    assert spec.source_profile == "base" and spec.profile == "dev"
    assert spec.external_id == "from-profile" and spec.session_name == "prof-session"
    assert spec.duration == 900  # ours beats the profile's duration_seconds


def test_a_role_table_profile_beats_inherited_top_level_keys() -> None:
    cfg = config.build(
        {"duration": 3000, "source_profile": "other", "roles": {"d": {"profile": "dev"}}}, reader
    )
    spec = cfg.roles["d"]
    assert spec.duration == 1800 and spec.source_profile == "base"


def test_a_source_key_replaces_the_profiles_source_instead_of_clashing() -> None:
    spec = config.build({"profile": "dev", "credential_source": "Environment"}, reader).role
    assert spec.credential_source == "Environment" and spec.source_profile is None


def test_an_unknown_profile_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match="'nope' is not in"):
        config.build({"profile": "nope"}, reader)


def test_source_role_must_name_another_role_without_loops() -> None:
    a = "arn:aws:iam::123456789012:role/a"
    ok = config.build({"roles": {"base": {"role_arn": a}, "top": {"role_arn": a, "source_role": "base"}}})
    assert ok.roles["top"].source_role == "base"
    assert "chained" in ok.roles["top"].source_description
    with pytest.raises(ConfigError, match="'nope' is not a configured role"):
        config.build({"roles": {"top": {"role_arn": a, "source_role": "nope"}}})
    with pytest.raises(ConfigError, match="loops: x -> y -> x"):
        config.build(
            {"roles": {"x": {"role_arn": a, "source_role": "y"}, "y": {"role_arn": a, "source_role": "x"}}}
        )


def test_daemon_wide_mfa_and_control_keys() -> None:
    cfg = config.build(
        {
            "role_arn": ROLE_ARN,
            "control_socket": "~/ctl.sock",
            "mfa_warn_ahead": 600,
            "notify_command": "notify-send -u critical",
        }
    )
    assert cfg.control_socket == Path("~/ctl.sock").expanduser()
    assert cfg.mfa_warn_ahead.total_seconds() == 600
    assert cfg.notify_command == ("notify-send", "-u", "critical")
    assert dataclasses.replace(cfg).control_socket == cfg.control_socket
