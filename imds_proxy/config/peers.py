"""Who may ask a listener: this host's own addresses, plus the networks `allow_clients` names and
the client map's networks (a map entry implies its network may ask)."""

from __future__ import annotations

import ipaddress
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from imds_proxy.config.clients import ClientMap, IpNetwork, client_address
from imds_proxy.errors import ConfigError

IpAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
#: Does this address belong to this host (its network namespace)? Asked by the server.
IsOwnAddress = Callable[[IpAddress], bool]

#: EC2's HttpPutResponseHopLimit default: a token reply does not survive one router, so a
#: container behind a bridge or a host that forwards cannot relay a token (EC2 user guide).
DEFAULT_HOP_LIMIT = 1
MAX_HOP_LIMIT = 64  # EC2's maximum


@dataclass(frozen=True)
class PeerPolicy:
    """Local clients always; anyone else only from `networks`."""

    networks: tuple[IpNetwork, ...] = ()

    def admits(self, remote: str | None, is_own: IsOwnAddress) -> bool:
        """May the peer at `remote` (as the socket reports it) ask at all?"""
        ip = client_address(remote)
        if ip is None:
            return False
        if ip.is_loopback or any(ip.version == n.version and ip in n for n in self.networks):
            return True
        return is_own(ip)

    def with_networks(self, more: tuple[IpNetwork, ...]) -> PeerPolicy:
        return PeerPolicy(tuple(dict.fromkeys((*self.networks, *more))))


def build_peers(raw: Any, clients: ClientMap) -> PeerPolicy:
    """`allow_clients`: one network or a list of them; the client map's networks are added."""
    if raw is None:
        raw = []
    if isinstance(raw, str):
        raw = [raw]
    if not isinstance(raw, list | tuple):
        fix = 'e.g. allow_clients = ["172.17.0.0/16"]'
        raise ConfigError("allow_clients", "must be a list of networks", fix)
    networks: list[IpNetwork] = []
    for item in raw:
        try:
            networks.append(ipaddress.ip_network(str(item).strip()))
        except ValueError as e:
            problem = f"{item!r} is not an IP network ({e})"
            raise ConfigError("allow_clients", problem, "write e.g. 172.17.0.0/16 or 10.0.0.5") from None
    return PeerPolicy(tuple(networks)).with_networks(tuple(r.network for r in clients.rules))
