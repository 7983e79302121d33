"""Listeners as values: where one listens (an address, or a socket inherited from systemd), the
role it serves, the channels it speaks, who may ask and the token replies' hop limit; parsed
from `HOST:PORT[=ROLE]` and checked against the configured roles."""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Collection
from dataclasses import dataclass, field, replace
from typing import Any, Literal

from imds_proxy.config.clients import ClientMap
from imds_proxy.config.peers import DEFAULT_HOP_LIMIT, PeerPolicy
from imds_proxy.errors import ConfigError

DEFAULT_LISTEN = "127.0.0.1:8169"

#: What a listener speaks: the metadata service, and the container-credentials endpoint.
Channel = Literal["imds", "container"]


@dataclass(frozen=True)
class Listener:
    host: str
    port: int
    #: The role this listener's IMDS paths serve (None: the default role). SDKs read only
    #: the first line of the role listing, so one IMDS listener serves one role.
    role: str | None = None
    #: The protocols served here (config.build sets both when the container endpoint is on).
    channels: tuple[Channel, ...] = ("imds",)
    #: Who may have which role here (no rules: every client that reaches the listener).
    clients: ClientMap = field(default_factory=ClientMap)
    #: Who may ask at all (config/peers.py): this host's own addresses and allowed networks.
    peers: PeerPolicy = field(default_factory=PeerPolicy)
    #: IP TTL / IPv6 hop limit of token replies (EC2's HttpPutResponseHopLimit).
    hop_limit: int = DEFAULT_HOP_LIMIT
    #: A socket inherited from systemd (LISTEN_FDS): its descriptor and LISTEN_FDNAMES name;
    #: host and port are then what the socket is bound to, and nothing is bound for it.
    fd: int | None = None
    fd_name: str | None = None

    @property
    def url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}/"

    @property
    def origin(self) -> str:
        """Where the socket comes from, for logs: "" when we bind it ourselves."""
        return "" if self.fd is None else f" (socket {self.fd_name or self.fd} from systemd)"

    def __str__(self) -> str:
        return self.url.removeprefix("http://").rstrip("/") + self.origin

    def bound_to(self, port: int) -> Listener:
        return replace(self, port=port)


def _is_ip(host: str) -> bool:
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return False
    return True


def parse_listener(value: str, key: str = "listen") -> Listener:
    """`HOST:PORT` or `[IPv6]:PORT`, optionally `=ROLE` (the role this listener serves)."""
    fix = "write HOST:PORT[=ROLE], e.g. 127.0.0.1:8169 or [::1]:8169=dev"
    address, _, role = value.strip().partition("=")
    m = re.fullmatch(r"\[([0-9A-Fa-f:.]+)\]:(\d+)|([^:\[\]]+):(\d+)", address)
    if not m:
        raise ConfigError(key, f"{value!r} is not HOST:PORT", fix)
    host = m.group(1) or m.group(3)
    port = int(m.group(2) or m.group(4))
    if m.group(1):
        try:
            ipaddress.IPv6Address(host)
        except ValueError:
            raise ConfigError(key, f"{host!r} is not an IPv6 address", fix) from None
    if host != "localhost" and not _is_ip(host):
        # Binding resolves a name through DNS; a listener must be an address of this host.
        fix_ip = "write an IP address of this host, e.g. 127.0.0.1"
        raise ConfigError(key, f"{host!r} is a name, not an IP address", fix_ip)
    if not 0 <= port <= 65535:
        raise ConfigError(key, f"port {port} is out of range", "use a port from 1 to 65535")
    return Listener(host, port, role or None)


def build_listeners(raw_listen: Any, roles: Collection[str] | None) -> tuple[Listener, ...]:
    """The `listen` key (one string or a list), without repeats; each `=ROLE` must be configured
    (not checked with `roles` None: the roles themselves failed)."""
    if isinstance(raw_listen, str):
        raw_listen = [raw_listen]
    if not isinstance(raw_listen, list | tuple) or not raw_listen:
        raise ConfigError("listen", "needs at least one HOST:PORT", f'e.g. listen = ["{DEFAULT_LISTEN}"]')
    listeners = tuple(dict.fromkeys(parse_listener(str(v)) for v in raw_listen))
    for listener in listeners:
        if roles is not None and listener.role is not None and listener.role not in roles:
            raise ConfigError(
                "listen",
                f"{listener} serves role {listener.role!r}, which is not configured",
                f"use one of: {', '.join(roles)}",
            )
    return listeners
