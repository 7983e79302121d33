"""The container channel's configuration: the token (inline, from a file, generated), the
client map, and the URLs we hand out (only hosts every SDK accepts)."""

from __future__ import annotations

import stat
from pathlib import Path
from typing import Any

import pytest

from imds_proxy import config
from imds_proxy.config import container as channel
from imds_proxy.config.clients import ClientMap
from imds_proxy.config.listeners import Listener
from imds_proxy.errors import ConfigError

from container_support import TOKEN, two_roles
from fakes import ROLE_ARN


def build(**values: Any) -> config.Config:
    return config.build({"role_arn": ROLE_ARN, **values})


def config_error(**values: Any) -> ConfigError:
    with pytest.raises(ConfigError) as e:
        build(**values)
    return e.value


# --- the token ---------------------------------------------------------------------------


def test_container_endpoint_is_off_by_default() -> None:
    assert not build().container.enabled


def test_inline_token_turns_it_on_and_stays_out_of_repr() -> None:
    cfg = build(container_token=TOKEN)
    assert cfg.container.enabled and cfg.container.token == TOKEN
    assert TOKEN not in repr(cfg)


@pytest.mark.parametrize(
    ("token", "problem"),
    [("Zq7-tiny", "shorter than 16"), (TOKEN + "\n", "line break"), (TOKEN + "é", "printable ASCII")],
)
def test_unusable_inline_token_is_refused_without_quoting_it(token: str, problem: str) -> None:
    e = config_error(container_token=token)
    assert e.key == "container_token" and problem in str(e)
    assert token.strip() not in str(e)


def test_token_and_token_file_together_are_refused() -> None:
    e = config_error(container_token=TOKEN, container_token_file="/tmp/x")
    assert e.key == "container_token" and "only one" in e.fix


def test_environment_sets_the_token_file(tmp_path: Path) -> None:
    path = tmp_path / "token"
    cfg = config.load({"role_arn": ROLE_ARN}, {"IMDS_PROXY_CONTAINER_TOKEN_FILE": str(path)})
    assert cfg.container.token_file == path and cfg.container.token == path.read_text()


def test_missing_token_file_is_generated_without_newline_owner_only(tmp_path: Path) -> None:
    path = tmp_path / "token"
    cfg = build(container_token_file=str(path))
    data = path.read_bytes()
    assert cfg.container.token == data.decode()
    assert not data.endswith((b"\n", b"\r")) and len(data) >= 32
    assert stat.S_IMODE(path.stat().st_mode) == 0o600


def test_existing_token_file_is_used_and_kept(tmp_path: Path) -> None:
    path = tmp_path / "token"
    path.write_text(TOKEN)
    cfg = build(container_token_file=str(path))
    assert cfg.container.token == TOKEN and path.read_text() == TOKEN


def test_two_starts_share_the_generated_token(tmp_path: Path) -> None:
    path = str(tmp_path / "token")
    first, second = build(container_token_file=path), build(container_token_file=path)
    assert first.container.token == second.container.token


@pytest.mark.parametrize("ending", ["\n", "\r\n"])
def test_token_file_with_a_line_break_is_refused_saying_why(tmp_path: Path, ending: str) -> None:
    path = tmp_path / "token"
    path.write_text(TOKEN + ending)
    with pytest.raises(ConfigError) as e:
        build(container_token_file=str(path))
    assert e.value.key == "container_token_file"
    assert "line break" in str(e.value) and "printf %s" in str(e.value)
    assert TOKEN not in str(e.value)


def test_token_file_in_a_missing_directory_says_what_to_do(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as e:
        build(container_token_file=str(tmp_path / "nope" / "token"))
    assert "cannot be created" in str(e.value)


# --- the client map ----------------------------------------------------------------------


def test_client_map_from_a_table_and_from_the_environment_agree() -> None:
    table = two_roles(clients={"10.0.0.0/24": "one", "10.0.0.7": "two"}).clients
    env = config.read_env({"IMDS_PROXY_CLIENTS": "10.0.0.0/24=one, 10.0.0.7=two"})
    assert two_roles(**env).clients == table


def test_most_specific_network_wins() -> None:
    clients = two_roles(clients={"10.0.0.0/24": "one", "10.0.0.7": "two"}).clients
    assert clients.role_for("10.0.0.7") == "two"
    assert clients.role_for("10.0.0.8") == "one"
    assert clients.role_for("10.0.1.1") is None


def test_ipv4_mapped_client_address_matches_the_ipv4_rule() -> None:
    clients = two_roles(clients={"10.0.0.7": "two"}).clients
    assert clients.role_for("::ffff:10.0.0.7") == "two"


@pytest.mark.parametrize(
    ("clients", "problem"),
    [
        ({"10.0.0.7": "three"}, "not configured"),
        ({"10.0.0.7/24": "one"}, "host bits"),
        ({"not-an-ip": "one"}, "not an IP"),
        (["10.0.0.7"], "NETWORK=ROLE"),
        (["10.0.0.7=one", "10.0.0.7/32=two"], "mapped twice"),
    ],
)
def test_bad_client_map_names_the_key(clients: Any, problem: str) -> None:
    with pytest.raises(ConfigError) as e:
        two_roles(clients=clients)
    assert e.value.key == "clients" and problem in str(e.value)


def test_client_map_needs_the_container_endpoint() -> None:
    with pytest.raises(ConfigError) as e:
        two_roles(clients={"10.0.0.7": "one"}, container_token=None)
    assert "container_token_file" in e.value.fix


def test_without_rules_every_client_may_have_every_role() -> None:
    assert ClientMap().allows("10.9.9.9", "anything")


def test_client_map_guards_imds_for_network_clients_but_not_loopback() -> None:
    clients = two_roles(clients={"169.254.170.10": "one"}).clients
    assert clients.allows("169.254.170.10", "one", loopback_exempt=True)
    assert not clients.allows("169.254.170.11", "one", loopback_exempt=True)
    assert not clients.allows("169.254.170.10", "two", loopback_exempt=True)
    assert clients.allows("127.0.0.1", "two", loopback_exempt=True)
    assert not clients.allows("127.0.0.1", "two")  # the container route has no exemption


# --- URLs we hand out ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("host", "url"),
    [
        ("127.0.0.1", "http://127.0.0.1:8169/v1/credentials"),
        ("0.0.0.0", "http://127.0.0.1:8169/v1/credentials"),  # fromContainerMetadata: 127.0.0.1 only
        ("localhost", "http://127.0.0.1:8169/v1/credentials"),
        ("::", "http://[::1]:8169/v1/credentials"),
        ("169.254.170.2", "http://169.254.170.2:8169/v1/credentials"),
    ],
)
def test_credentials_url_uses_a_literal_loopback_for_local_listeners(host: str, url: str) -> None:
    assert channel.credentials_url(Listener(host, 8169)) == url


def test_credentials_url_for_a_named_role() -> None:
    assert channel.credentials_url(Listener("127.0.0.1", 1), "dev") == "http://127.0.0.1:1/v1/credentials/dev"


@pytest.mark.parametrize(
    ("host", "accepted"),
    [
        ("127.0.0.1", True),
        ("127.0.0.3", True),
        ("::1", True),
        ("169.254.170.2", True),
        ("169.254.170.23", True),
        ("fd00:ec2::23", True),
        ("172.17.0.2", False),
        ("10.0.0.5", False),
        ("imds-proxy", False),  # a compose service name: botocore refuses names
    ],
)
def test_sdk_accepted_hosts_are_loopback_and_the_aws_link_local_ones(host: str, accepted: bool) -> None:
    assert channel.sdk_accepts(host) is accepted
