"""The client map: source network → role, so one sidecar can serve several containers,
each seeing only its own role."""

from __future__ import annotations

import functools
import ipaddress
from collections.abc import Collection, Mapping
from dataclasses import dataclass
from typing import Any

from imds_proxy.errors import ConfigError

IpNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network


@dataclass(frozen=True)
class ClientRule:
    network: IpNetwork
    role: str

    def __str__(self) -> str:
        return f"{self.network}={self.role}"


@functools.lru_cache(maxsize=1024)  # pure, asked on every request; peers are few (bounded anyway)
def client_address(value: str | None) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    """A client address as the socket reports it; IPv4-mapped IPv6 (a dual-stack
    listener's view of an IPv4 client) counts as the IPv4 address."""
    if not value:
        return None
    try:
        address = ipaddress.ip_address(value.split("%", 1)[0])
    except ValueError:
        return None
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return address.ipv4_mapped
    return address


@dataclass(frozen=True)
class ClientMap:
    """Source network → role, for one sidecar serving several containers: each client gets
    only the role of the most specific network it is in. No rules: no restriction."""

    rules: tuple[ClientRule, ...] = ()

    @property
    def configured(self) -> bool:
        return bool(self.rules)

    def role_for(self, address: str | None) -> str | None:
        """The role mapped to this client address (longest prefix wins), or None."""
        ip = client_address(address)
        if ip is None:
            return None
        matches = [r for r in self.rules if r.network.version == ip.version and ip in r.network]
        if not matches:
            return None
        return max(matches, key=lambda r: r.network.prefixlen).role

    def allows(self, address: str | None, role: str, *, loopback_exempt: bool = False) -> bool:
        """May this client have this role's credentials? `loopback_exempt` is for IMDS
        listeners: processes on the daemon's own host are trusted as on an instance (and
        the health check runs there); the map is about the containers on a network."""
        if not self.rules:
            return True
        ip = client_address(address)
        if loopback_exempt and ip is not None and ip.is_loopback:
            return True
        return self.role_for(address) == role


def _client_rule(raw_network: object, raw_role: object, roles: Collection[str]) -> ClientRule:
    fix = 'write NETWORK=ROLE, e.g. 169.254.170.10=web or "10.0.0.0/24" = "web"'
    if not isinstance(raw_network, str) or not isinstance(raw_role, str):
        raise ConfigError("clients", f"{raw_network!r} = {raw_role!r} is not NETWORK = ROLE", fix)
    try:
        network = ipaddress.ip_network(raw_network.strip())
    except ValueError as e:
        raise ConfigError("clients", f"{raw_network!r} is not an IP address or network ({e})", fix) from None
    role = raw_role.strip()
    if role not in roles:
        raise ConfigError(
            "clients",
            f"{network} is mapped to role {role!r}, which is not configured",
            f"use one of: {', '.join(roles)}",
        )
    return ClientRule(network, role)


def build_clients(raw: Any, roles: Collection[str]) -> ClientMap:
    """`[clients]` as a table (NETWORK = ROLE) or, from the environment and the command line,
    a list of `NETWORK=ROLE` items."""
    if raw is None:
        return ClientMap()
    if isinstance(raw, str):
        raw = [raw]
    pairs: list[tuple[object, object]]
    if isinstance(raw, Mapping):
        pairs = list(raw.items())
    elif isinstance(raw, list | tuple):
        pairs = []
        for item in raw:
            network, sep, role = str(item).partition("=")
            if not sep:
                raise ConfigError("clients", f"{item!r} is not NETWORK=ROLE", "e.g. 169.254.170.10=web")
            pairs.append((network, role))
    else:
        raise ConfigError(
            "clients",
            "must be a table of NETWORK = ROLE",
            'write [clients] with lines like "169.254.170.10" = "web"',
        )
    rules = tuple(_client_rule(network, role, roles) for network, role in pairs)
    seen: set[IpNetwork] = set()
    for rule in rules:
        if rule.network in seen:
            raise ConfigError("clients", f"{rule.network} is mapped twice", "give each network one role")
        seen.add(rule.network)
    return ClientMap(rules)
