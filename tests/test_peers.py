"""Who may ask, as configuration: allow_clients, the client map implying allow, the hop limit,
and listeners on sockets from systemd (config/peers.py, config/__init__.py, runtime/activation)."""

from __future__ import annotations

import ipaddress
from typing import Any

import pytest

from imds_proxy import config
from imds_proxy.config.listeners import Listener
from imds_proxy.config.peers import PeerPolicy
from imds_proxy.errors import ConfigError, ListenError
from imds_proxy.runtime import activation

ARN = "arn:aws:iam::123456789012:role/test-role"


def build(**values: Any) -> config.Config:
    return config.build({"role_arn": ARN, **values})


def never_own(_ip: object) -> bool:
    return False


def test_by_default_only_loopback_and_own_addresses_may_ask() -> None:
    peers = build().listeners[0].peers
    assert peers.admits("127.0.0.1", never_own) and peers.admits("::1", never_own)
    assert not peers.admits("10.1.0.2", never_own)
    assert peers.admits("10.1.0.2", lambda ip: str(ip) == "10.1.0.2")


def test_allow_clients_adds_networks_and_v4_mapped_peers_count_as_ipv4() -> None:
    peers = build(allow_clients=["172.17.0.0/16"]).listeners[0].peers
    assert peers.admits("172.17.0.5", never_own) and peers.admits("::ffff:172.17.0.5", never_own)
    assert not peers.admits("172.18.0.5", never_own)


def test_the_client_map_implies_allow() -> None:
    cfg = build(clients=["10.4.0.2=test-role"], container_token="t" * 32)
    assert cfg.listeners[0].peers == PeerPolicy((ipaddress.ip_network("10.4.0.2/32"),))


def test_an_unparseable_peer_is_refused() -> None:
    assert not PeerPolicy().admits(None, lambda _ip: True)
    assert not PeerPolicy().admits("not-an-ip", lambda _ip: True)


def test_a_bad_network_is_a_config_error_naming_the_key() -> None:
    with pytest.raises(ConfigError, match="allow_clients: 'docker0' is not an IP network"):
        build(allow_clients=["docker0"])


@pytest.mark.parametrize("value", ["0", "65", "x"])
def test_hop_limit_outside_1_to_64_is_refused(value: str) -> None:
    with pytest.raises(ConfigError, match="hop_limit"):
        build(hop_limit=value)


def test_hop_limit_defaults_to_ec2s_one_and_reaches_every_listener() -> None:
    assert build().listeners[0].hop_limit == 1
    assert {x.hop_limit for x in build(hop_limit="3", listen=["127.0.0.1:1", "[::1]:2"]).listeners} == {3}


def test_inherited_sockets_replace_the_default_listener_but_not_an_explicit_one() -> None:
    inherited = (Listener("169.254.169.254", 80, fd=3, fd_name="imds"),)
    only = config.build({"role_arn": ARN}, inherited=inherited).listeners
    assert [(x.fd, x.role) for x in only] == [(3, "test-role")]
    both = config.build({"role_arn": ARN, "listen": ["127.0.0.1:8169"]}, inherited=inherited).listeners
    assert [x.fd for x in both] == [3, None]
    assert str(only[0]) == "169.254.169.254:80 (socket imds from systemd)"


def test_listen_fds_for_another_process_are_ignored_and_removed() -> None:
    env = {"LISTEN_PID": "1", "LISTEN_FDS": "2", "LISTEN_FDNAMES": "a:b", "OTHER": "x"}
    assert activation.take(env, pid=4242) == ()
    assert env == {"OTHER": "x"}


def test_garbled_listen_fds_are_a_one_line_error() -> None:
    with pytest.raises(ListenError, match="are not numbers"):
        activation.take({"LISTEN_PID": "4242", "LISTEN_FDS": "two"}, pid=4242)
