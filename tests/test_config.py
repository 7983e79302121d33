"""Configuration: precedence, validation into frozen objects, one-line errors naming key and fix."""

from __future__ import annotations

import dataclasses
from datetime import timedelta
from pathlib import Path

import pytest

from imds_proxy import config
from imds_proxy.config import load
from imds_proxy.config.listeners import Listener, parse_listener
from imds_proxy.config.roles import SESSION_NAME_RE, default_session_name
from imds_proxy.errors import ConfigError, ConfigErrors

from fakes import ROLE_ARN


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "imds-proxy.toml"
    path.write_text(text)
    return path


def test_defaults() -> None:
    cfg = config.build({"role_arn": ROLE_ARN})
    assert cfg.listeners == (Listener("127.0.0.1", 8169, "test-role"),)
    assert cfg.role.duration == 3600
    assert cfg.refresh_ahead == timedelta(minutes=30)
    assert cfg.imdsv1 is False
    assert cfg.identity.region == "us-east-1" and cfg.identity.availability_zone == "us-east-1a"
    assert cfg.identity.account_id == "123456789012"
    assert cfg.role.session_name.startswith("imds-proxy-")


def test_config_is_immutable() -> None:
    cfg = config.build({"role_arn": ROLE_ARN})
    with pytest.raises(dataclasses.FrozenInstanceError):
        cfg.imdsv1 = True  # type: ignore[misc]


def test_cli_beats_environment_beats_file_beats_defaults(tmp_path: Path) -> None:
    file = write(tmp_path, f'role_arn = "{ROLE_ARN}"\nduration = 1000\nregion = "eu-west-1"\nimdsv1 = true\n')
    env = {"IMDS_PROXY_DURATION": "2000", "IMDS_PROXY_REGION": "eu-central-1"}
    cfg = load({"duration": "3000"}, env, file)
    assert cfg.role.duration == 3000  # CLI
    assert cfg.role.region == "eu-central-1"  # environment
    assert cfg.imdsv1 is True  # file
    assert cfg.role.external_id is None  # default


def test_config_file_from_environment(tmp_path: Path) -> None:
    file = write(tmp_path, f'role_arn = "{ROLE_ARN}"\nlisten = ["127.0.0.1:9000", "[::1]:9000"]\n')
    cfg = load({}, {"IMDS_PROXY_CONFIG": str(file)})
    assert cfg.listeners == (Listener("127.0.0.1", 9000, "test-role"), Listener("::1", 9000, "test-role"))


def test_listen_from_environment_is_comma_separated() -> None:
    cfg = load({}, {"IMDS_PROXY_ROLE_ARN": ROLE_ARN, "IMDS_PROXY_LISTEN": "127.0.0.1:1, [::1]:2"})
    assert [str(listener) for listener in cfg.listeners] == ["127.0.0.1:1", "[::1]:2"]


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("127.0.0.1:8169", Listener("127.0.0.1", 8169)),
        ("[::1]:8169", Listener("::1", 8169)),
        ("[fd00:ec2::254]:80", Listener("fd00:ec2::254", 80)),
        ("localhost:80", Listener("localhost", 80)),
    ],
)
def test_listener_forms(value: str, expected: Listener) -> None:
    assert parse_listener(value) == expected


@pytest.mark.parametrize("value", ["8169", "::1:8169", "[nothex]:1", "127.0.0.1:99999", "127.0.0.1:", ""])
def test_bad_listener_names_the_key_and_the_form(value: str) -> None:
    with pytest.raises(ConfigError, match=r"^config error: listen: .*HOST:PORT|port"):
        parse_listener(value)


@pytest.mark.parametrize(
    ("values", "key"),
    [
        ({}, "role_arn"),
        ({"role_arn": "arn:aws:iam::123:role/x"}, "role_arn"),
        ({"role_arn": "arn:aws:iam::123456789012:user/bob"}, "role_arn"),
        ({"duration": "899"}, "duration"),
        ({"duration": "43201"}, "duration"),
        ({"duration": "1h"}, "duration"),
        ({"role_session_name": "has space"}, "role_session_name"),
        ({"role_session_name": "x"}, "role_session_name"),
        ({"external_id": "a"}, "external_id"),
        ({"region": "mars"}, "region"),
        ({"imdsv1": "maybe"}, "imdsv1"),
        ({"refresh_ahead": "1801"}, "refresh_ahead"),  # over half of 3600
        ({"refresh_ahead": "10"}, "refresh_ahead"),
        ({"availability_zone": "eu-west-1a"}, "availability_zone"),  # region is us-east-1
        ({"instance_id": "i-xyz"}, "instance_id"),
        ({"log_format": "xml"}, "log_format"),
        ({"sts_endpoint_url": "sts.example.com"}, "sts_endpoint_url"),
        ({"listen": []}, "listen"),
    ],
)
def test_bad_values_name_the_key_and_the_fix(values: dict[str, str], key: str) -> None:
    base = {"role_arn": ROLE_ARN} if key != "role_arn" else {}
    with pytest.raises(ConfigError) as raised:
        config.build({**base, **values})
    assert raised.value.key == key
    message = str(raised.value)
    assert "\n" not in message and message.startswith(f"config error: {key}: ")
    assert raised.value.fix


def test_refresh_ahead_defaults_to_half_a_short_session() -> None:
    cfg = config.build({"role_arn": ROLE_ARN, "duration": 900})
    assert cfg.refresh_ahead == timedelta(seconds=450)


def test_unknown_file_key_is_refused(tmp_path: Path) -> None:
    file = write(tmp_path, f'role_arn = "{ROLE_ARN}"\nrole_ar = "x"\n')
    with pytest.raises(ConfigError, match="role_ar: unknown key"):
        load({}, {}, file)


def test_broken_file_is_refused_in_one_line(tmp_path: Path) -> None:
    file = write(tmp_path, "role_arn = \n")
    with pytest.raises(ConfigError, match="not valid TOML") as raised:
        load({}, {}, file)
    assert "\n" not in str(raised.value)


def test_missing_file_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="does not exist"):
        load({}, {}, tmp_path / "nope.toml")


def test_wrong_type_in_file_is_refused(tmp_path: Path) -> None:
    file = write(tmp_path, f'role_arn = "{ROLE_ARN}"\nexternal_id = 12\n')
    with pytest.raises(ConfigError, match="external_id"):
        load({}, {}, file)


@pytest.mark.parametrize(
    ("host", "expected"),
    [
        ("laptop.example.com", "imds-proxy-laptop"),
        ("my host!", "imds-proxy-my-host-"[:-1]),
        ("x" * 80, ("imds-proxy-" + "x" * 80)[:64]),
        ("ünï", "imds-proxy--n"),
    ],
)
def test_default_session_name_fits_sts_pattern(host: str, expected: str) -> None:
    name = default_session_name(host)
    assert name == expected
    assert SESSION_NAME_RE.fullmatch(name)


def test_role_tables_inherit_top_level_role_keys(tmp_path: Path) -> None:
    file = write(
        tmp_path,
        'region = "eu-west-1"\nduration = 1800\n'
        'listen = ["127.0.0.1:8169=dev", "127.0.0.1:8170=prod"]\n'
        '[roles.dev]\nrole_arn = "arn:aws:iam::111122223333:role/dev"\n'
        '[roles.prod]\nrole_arn = "arn:aws:iam::444455556666:role/admin"\nexternal_id = "prod-42"\n'
        "duration = 900\n",
    )
    cfg = load({}, {}, file)
    assert list(cfg.roles) == ["dev", "prod"]
    assert cfg.roles["dev"].region == "eu-west-1" and cfg.roles["dev"].duration == 1800
    assert cfg.roles["prod"].external_id == "prod-42" and cfg.roles["prod"].duration == 900
    assert [cfg.listener_role(listener) for listener in cfg.listeners] == ["dev", "prod"]
    assert cfg.refresh_ahead == timedelta(seconds=450)  # half the shortest session
    assert cfg.role is cfg.roles["dev"]  # the first is the default


def test_top_level_role_comes_first_and_is_named_after_its_arn() -> None:
    cfg = config.build(
        {"role_arn": ROLE_ARN, "roles": {"other": {"role_arn": "arn:aws:iam::123456789012:role/o"}}}
    )
    assert list(cfg.roles) == ["test-role", "other"]
    assert cfg.listener_role(cfg.listeners[0]) == "test-role"


@pytest.mark.parametrize(
    ("values", "key"),
    [
        ({"listen": ["127.0.0.1:1=nope"]}, "listen"),
        ({"roles": {"dev": {"role_arn": ROLE_ARN, "colour": "red"}}}, "roles.dev.colour"),
        ({"roles": {"dev": {"role_arn": "nope"}}}, "roles.dev.role_arn"),
        ({"roles": {"dev": {"duration": 5}}}, "roles.dev.role_arn"),
        ({"roles": {"dev": {"role_arn": ROLE_ARN, "duration": 5}}}, "roles.dev.duration"),
        ({"roles": {"bad name": {"role_arn": ROLE_ARN}}}, "roles.bad name"),
        ({"roles": "dev"}, "roles"),
    ],
)
def test_bad_role_tables_name_the_key(values: dict[str, object], key: str) -> None:
    base: dict[str, object] = {} if "roles" in values else {"role_arn": ROLE_ARN}
    with pytest.raises(ConfigError) as raised:
        config.build({**base, **values})
    assert raised.value.key == key


def test_listener_role_suffix() -> None:
    assert parse_listener("[::1]:8169=dev") == Listener("::1", 8169, "dev")


def test_errors_of_independent_keys_are_reported_together(tmp_path: Path) -> None:
    bad = 'listen = "nonsense"\nduration = 10\nlog_format = "xml"\n'
    file = write(tmp_path, f'role_arn = "{ROLE_ARN}"\n{bad}')
    with pytest.raises(ConfigErrors) as raised:
        load({}, {}, file)
    assert [e.key for e in raised.value.errors] == ["duration", "listen", "log_format"]
    assert (raised.value.key, raised.value.fix) == ("duration", "give seconds from 900 to 43200")


def test_unknown_keys_in_the_file_are_reported_with_the_other_errors(tmp_path: Path) -> None:
    file = write(tmp_path, f'role_arn = "{ROLE_ARN}"\nduraton = 900\nlog_level = "loud"\n')
    with pytest.raises(ConfigErrors) as raised:
        load({}, {}, file)
    assert [e.key for e in raised.value.errors] == ["duraton", "log_level"]
    assert str(file) in raised.value.errors[0].problem


def test_one_bad_key_is_a_plain_config_error() -> None:
    with pytest.raises(ConfigError) as raised:
        config.build({"role_arn": ROLE_ARN, "hop_limit": "0"})
    assert type(raised.value) is ConfigError and raised.value.key == "hop_limit"


def test_a_listener_naming_a_role_is_not_checked_when_the_roles_failed() -> None:
    # Which roles exist is unknown: "not configured" would be a second, misleading error.
    with pytest.raises(ConfigError) as raised:
        config.build({"role_arn": "not-an-arn", "listen": ["127.0.0.1:1=dev"]})
    assert type(raised.value) is ConfigError and raised.value.key == "role_arn"


def test_a_bad_admin_listen_is_reported_beside_broken_roles() -> None:
    with pytest.raises(ConfigErrors) as raised:
        config.build({"role_arn": "not-an-arn", "admin_listen": "127.0.0.1:1=dev"})
    assert [e.key for e in raised.value.errors] == ["role_arn", "admin_listen"]
