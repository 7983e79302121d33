"""The frozen Config and its parts: roles, role parameters, listeners, identity, container
settings (token, URLs), client map, typed values, ARNs; load() with its precedence, resolved once.

Config and its precedence (CLI > environment > file > ~/.aws/config profile > defaults) live
here; each part has a module of its own. What load() returns is complete: the container token is
read, every listener knows its role, channels and clients; nothing downstream re-validates it."""

from __future__ import annotations

import dataclasses
import shlex
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from types import MappingProxyType
from typing import Any, Literal

from imds_proxy.config.admin import AdminSettings, build_admin
from imds_proxy.config.clients import ClientMap, build_clients
from imds_proxy.config.collect import Collector
from imds_proxy.config.container import ContainerSettings, build_container
from imds_proxy.config.identity import Identity, build_identity
from imds_proxy.config.listeners import DEFAULT_LISTEN, Channel, Listener, build_listeners
from imds_proxy.config.peers import DEFAULT_HOP_LIMIT, MAX_HOP_LIMIT, build_peers
from imds_proxy.config.roles import ROLE_KEYS, ProfileReader, RoleSpec, build_roles
from imds_proxy.config.values import choice, text, whole_number
from imds_proxy.errors import ConfigError

ENV_PREFIX = "IMDS_PROXY_"
#: botocore extends credentials with under 15 min + 2–10 min jitter left (protocol.md §4.1);
#: serving at least 30 min keeps every SDK on its normal refresh path.
DEFAULT_REFRESH_AHEAD = 1800
#: Warn this long before an MFA session that needs a human code ends.
DEFAULT_MFA_WARN_AHEAD = 1800

#: Keys that hold lists (repeatable options; comma-separated in the environment).
LIST_KEYS = ("listen", "clients", "allow_clients", "policy_arns", "tags", "transitive_tag_keys")
#: Every key the config file, the environment and the command line understand.
KEYS = (
    "listen",
    *ROLE_KEYS,
    "imdsv1",
    "refresh_ahead",
    "instance_id",
    "availability_zone",
    "instance_type",
    "log_format",
    "log_level",
    "container_token",
    "container_token_file",
    "clients",
    "allow_clients",
    "hop_limit",
    "control_socket",
    "mfa_warn_ahead",
    "notify_command",
    "admin_listen",
)


@dataclass(frozen=True)
class Config:
    listeners: tuple[Listener, ...]
    #: Roles by name, the default role first.
    roles: Mapping[str, RoleSpec]
    #: Every credential served has at least this long left while STS answers (the engine's
    #: RefreshPolicy.refresh_ahead).
    refresh_ahead: timedelta
    identity: Identity
    imdsv1: bool = False
    log_format: Literal["text", "json"] = "text"
    log_level: str = "INFO"
    container: ContainerSettings = field(default_factory=ContainerSettings)
    clients: ClientMap = field(default_factory=ClientMap)
    #: The control socket (`imds-proxy mfa`, `imds-proxy roles`); None: the default path.
    control_socket: Path | None = None
    mfa_warn_ahead: timedelta = timedelta(seconds=DEFAULT_MFA_WARN_AHEAD)
    #: Run with a message appended when an MFA session is about to end (e.g. notify-send).
    notify_command: tuple[str, ...] | None = None
    #: The admin endpoint: /healthz, /readyz, /metrics.
    admin: AdminSettings = field(default_factory=AdminSettings)

    @property
    def role(self) -> RoleSpec:
        """The default role: the one IMDS listeners without `=ROLE` serve."""
        return next(iter(self.roles.values()))

    def listener_role(self, listener: Listener) -> str:
        """The role a listener serves (a listener parsed elsewhere may name none)."""
        return listener.role or next(iter(self.roles))


def read_file(path: Path) -> dict[str, Any]:
    """The TOML config file as a flat mapping of known keys."""
    data, unknown = _read_toml(path)
    Collector(unknown).raise_found()
    return data


def _read_toml(path: Path) -> tuple[dict[str, Any], list[ConfigError]]:
    """The file's known keys, and an error for each unknown one (reported with the others)."""
    try:
        with path.open("rb") as f:
            data = tomllib.load(f)
    except FileNotFoundError:
        raise ConfigError("config", f"{path} does not exist", "check the --config path") from None
    except tomllib.TOMLDecodeError as e:
        raise ConfigError("config", f"{path} is not valid TOML ({e})", "fix the file") from None
    except OSError as e:
        raise ConfigError("config", f"cannot read {path} ({e.strerror})", "check its permissions") from None
    known = (*KEYS, "roles")
    fix = f"use one of: {', '.join(KEYS)}"
    unknown = [ConfigError(key, f"unknown key in {path}", fix) for key in sorted(set(data) - set(known))]
    return {k: v for k, v in data.items() if k in known}, unknown


def read_env(env: Mapping[str, str]) -> dict[str, Any]:
    """`IMDS_PROXY_<KEY>` variables; list keys (LISTEN, CLIENTS, TAGS, ...) take comma-separated lists."""
    out: dict[str, Any] = {}
    for key in KEYS:
        raw = env.get(ENV_PREFIX + key.upper())
        if raw is None or raw == "":
            continue
        out[key] = [p.strip() for p in raw.split(",") if p.strip()] if key in LIST_KEYS else raw
    return out


def merge(*layers: Mapping[str, Any]) -> dict[str, Any]:
    """Later layers win; None means "not given"."""
    merged: dict[str, Any] = {}
    for layer in layers:
        merged.update({k: v for k, v in layer.items() if v is not None})
    return merged


def load(
    cli: Mapping[str, Any],
    env: Mapping[str, str],
    config_file: Path | None = None,
    profiles: ProfileReader | None = None,
    inherited: tuple[Listener, ...] = (),
) -> Config:
    """Build the Config: CLI > environment (`IMDS_PROXY_*`) > file > ~/.aws/config profile > defaults.
    `inherited`: listeners on sockets systemd passed (see build)."""
    env_values = read_env(env)
    file_path = config_file or (Path(env[ENV_PREFIX + "CONFIG"]) if env.get(ENV_PREFIX + "CONFIG") else None)
    file_values, unknown = _read_toml(file_path) if file_path else ({}, [])
    found = Collector(unknown)  # reported with the values' errors
    cfg = found.take(lambda: build(merge(file_values, env_values, cli), profiles, inherited), None)
    found.raise_found()
    assert cfg is not None  # raise_found raised
    return cfg


def build(
    values: Mapping[str, Any], profiles: ProfileReader | None = None, inherited: tuple[Listener, ...] = ()
) -> Config:
    """Validate merged raw values into a Config. Raises ConfigError naming the key and the fix.
    `profiles` reads ~/.aws/config profiles for roles that name one. `inherited` listeners
    (sockets from systemd) serve the default role; with them, `listen` has no default: only
    the addresses it names are bound besides them."""
    found = Collector()
    for key in sorted(set(values) - set(KEYS) - {"roles"}):
        found.add(ConfigError(key, "is not a configuration key", f"use one of: {', '.join(KEYS)}, roles"))
    # Keys are checked independently, so that one run names every bad one. What depends on a
    # key that failed is not checked (its error would be a consequence, not news): without
    # roles, refresh_ahead (bounded by their durations), identity (their region), clients and
    # allow_clients (role names), a listener's =ROLE.
    roles = found.take(lambda: build_roles(values, profiles), None)
    listen = values.get("listen", [DEFAULT_LISTEN])
    wanted = "listen" in values or not inherited
    bound = found.take(lambda: build_listeners(listen, roles) if wanted else (), None)
    # Only the addresses matter to the admin endpoint's check: roles or no roles.
    admin = found.take(lambda: build_admin(values, (*inherited, *(bound or ()))), AdminSettings())
    container = found.take(lambda: build_container(values), ContainerSettings())
    hop_limit = found.take(
        lambda: whole_number(values, "hop_limit", DEFAULT_HOP_LIMIT, 1, MAX_HOP_LIMIT, "hops"), 0
    )
    log_format = found.take(lambda: choice(values, "log_format", "text", ("text", "json")), "")
    levels = ("debug", "info", "warning", "error")
    log_level = found.take(lambda: choice(values, "log_level", "info", levels), "").upper()
    imdsv1 = found.take(lambda: choice(values, "imdsv1", "disabled", ("enabled", "disabled")), "")
    daemon_wide = _mfa_and_control(values, found)
    if roles is None or bound is None:
        found.raise_found()
    assert roles is not None and bound is not None  # raise_found raised
    role = next(iter(roles.values()))
    half = min(r.duration for r in roles.values()) // 2
    ahead = min(DEFAULT_REFRESH_AHEAD, half)
    if "refresh_ahead" in values:
        seconds = (DEFAULT_REFRESH_AHEAD, 60, half, "seconds")
        ahead = found.take(lambda: whole_number(values, "refresh_ahead", *seconds), ahead)
    identity = found.take(lambda: build_identity(values, role), None)
    clients = found.take(lambda: _clients(values, roles, container), ClientMap())
    peers = found.take(lambda: build_peers(values.get("allow_clients"), clients), None)
    found.raise_found()
    assert identity is not None and peers is not None  # raise_found raised

    channels: tuple[Channel, ...] = ("imds", "container") if container.enabled else ("imds",)
    listeners = tuple(
        dataclasses.replace(
            listener,
            role=listener.role or role.name,
            channels=channels,
            clients=clients,
            peers=peers,
            hop_limit=hop_limit,
        )
        for listener in (*inherited, *bound)
    )
    return Config(
        listeners=listeners,
        roles=MappingProxyType(roles),
        refresh_ahead=timedelta(seconds=ahead),
        identity=identity,
        imdsv1=imdsv1 == "enabled",
        log_format=log_format,  # type: ignore[arg-type]
        log_level=log_level,
        container=container,
        clients=clients,
        admin=admin,
        **daemon_wide,
    )


def _clients(
    values: Mapping[str, Any], roles: Mapping[str, RoleSpec], container: ContainerSettings
) -> ClientMap:
    """The client map, which needs the container endpoint it maps clients to."""
    clients = build_clients(values.get("clients"), roles)
    if clients.configured and not container.enabled:
        raise ConfigError(
            "clients",
            "maps clients to roles, but the container endpoint is off",
            "set container_token_file (or container_token) as well",
        )
    return clients


def _mfa_and_control(values: Mapping[str, Any], found: Collector) -> dict[str, Any]:
    """The daemon-wide keys of the control socket and the MFA warning; each bad one is added
    to `found`, and the result is then not used."""
    socket_path = found.take(lambda: text(values, "control_socket"), None)
    warn = found.take(
        lambda: whole_number(values, "mfa_warn_ahead", DEFAULT_MFA_WARN_AHEAD, 60, 86400, "seconds"),
        DEFAULT_MFA_WARN_AHEAD,
    )
    return {
        "control_socket": Path(socket_path).expanduser() if socket_path else None,
        "mfa_warn_ahead": timedelta(seconds=warn),
        "notify_command": found.take(lambda: _notify_command(values), None),
    }


def _notify_command(values: Mapping[str, Any]) -> tuple[str, ...] | None:
    notify = text(values, "notify_command")
    try:
        notify_argv = tuple(shlex.split(notify)) if notify else None
    except ValueError:
        notify_argv = ()
    if notify_argv == ():
        raise ConfigError("notify_command", "is not a command", 'write e.g. notify_command = "notify-send"')
    return notify_argv
