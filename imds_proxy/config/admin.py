"""The admin listener's setting (`admin_listen`: HOST:PORT or off): health, readiness and
metrics, never on an address that serves credentials."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from imds_proxy.config.listeners import Listener, parse_listener
from imds_proxy.errors import ConfigError

#: Next to IMDS's 8169, and used by nothing the docs show (the README's second listener is
#: 8170). Loopback: metrics name roles and clients, which are nobody else's business.
DEFAULT_ADMIN_LISTEN = "127.0.0.1:9169"
_WILDCARDS = ("0.0.0.0", "::", "")


@dataclass(frozen=True)
class AdminSettings:
    """Where the admin endpoint listens (None: off); `explicit` when the user asked for it,
    in which case failing to bind it is fatal (the default is given up with a warning)."""

    listener: Listener | None = None
    explicit: bool = False


def _overlaps(a: Listener, b: Listener) -> bool:
    same_host = a.host == b.host or a.host in _WILDCARDS or b.host in _WILDCARDS
    return a.port == b.port and a.port != 0 and same_host


def build_admin(values: Mapping[str, Any], listeners: tuple[Listener, ...]) -> AdminSettings:
    """The `admin_listen` key against the credential listeners it must not share."""
    raw = values.get("admin_listen")
    if raw is not None and str(raw).strip().lower() == "off":
        return AdminSettings()
    explicit = raw is not None
    admin = parse_listener(str(raw) if explicit else DEFAULT_ADMIN_LISTEN, "admin_listen")
    if admin.role is not None:
        raise ConfigError("admin_listen", "serves no role", "write HOST:PORT (or off), without =ROLE")
    clash = next((lst for lst in listeners if _overlaps(admin, lst)), None)
    if clash is not None:
        if not explicit:
            return AdminSettings()  # the user's own listener took the default port: theirs wins
        raise ConfigError(
            "admin_listen",
            f"{admin} would share {clash}, which serves credentials",
            "give the admin endpoint a port of its own (or off)",
        )
    return AdminSettings(admin, explicit)
