"""Configuration: frozen dataclasses built once at start-up, CLI > environment > file > defaults."""

from __future__ import annotations

import ipaddress
import re
import shlex
import socket
import tomllib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from types import MappingProxyType
from typing import Any, Literal

from imds_proxy import role_params
from imds_proxy.clients import ClientMap, build_clients
from imds_proxy.credentials import account_of, role_name_of
from imds_proxy.errors import ConfigError
from imds_proxy.role_params import DEFAULT_MFA_DURATION

ENV_PREFIX = "IMDS_PROXY_"
DEFAULT_LISTEN = "127.0.0.1:8169"
DEFAULT_REGION = "us-east-1"
DEFAULT_DURATION = 3600
#: botocore extends credentials with under 15 min + 2–10 min jitter left (protocol.md §4.1);
#: serving at least 30 min keeps every SDK on its normal refresh path.
DEFAULT_REFRESH_AHEAD = 1800
#: Warn this long before an MFA session that needs a human code ends.
DEFAULT_MFA_WARN_AHEAD = 1800

# STS limits (protocol.md §6).
MIN_DURATION, MAX_DURATION = 900, 43200
SESSION_NAME_RE = re.compile(r"[\w+=,.@-]{2,64}", re.ASCII)  # AWS's \w is ASCII-only
EXTERNAL_ID_RE = re.compile(r"[\w+=,.@:/-]{2,1224}", re.ASCII)
ROLE_ARN_RE = re.compile(r"arn:aws[\w-]*:iam::\d{12}:role/[\w+=,.@/-]{1,512}", re.ASCII)
INSTANCE_ID_RE = re.compile(r"i-[0-9a-f]{8,17}")
REGION_RE = re.compile(r"[a-z]{2}(-[a-z]+)+-\d+")
#: Keys that hold lists (repeatable options; comma-separated in the environment).
LIST_KEYS = ("listen", "clients", "policy_arns", "tags", "transitive_tag_keys")

#: Keys that describe one role: top level (the default role) or in a `[roles.NAME]` table,
#: where unset ones are inherited from the top level.
ROLE_KEYS = (
    "role_arn",
    "role_session_name",
    "duration",
    "external_id",
    "region",
    "source_profile",
    "sts_endpoint_url",
    # Roles from ~/.aws/config, chaining, web identity, the full AssumeRole surface, MFA.
    "profile",
    "credential_source",
    "source_role",
    "web_identity_token_file",
    "policy",
    "policy_file",
    "policy_arns",
    "tags",
    "transitive_tag_keys",
    "source_identity",
    "mfa_serial",
    "mfa_process",
    "mfa_duration",
)
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
    "control_socket",
    "mfa_warn_ahead",
    "notify_command",
)
#: A container authorization token shorter than this is guessable.
MIN_CONTAINER_TOKEN = 16

#: Reads one ~/.aws/config profile as role keys (profiles.read_profile; a dict in tests).
ProfileReader = Callable[[str], Mapping[str, Any]]


@dataclass(frozen=True)
class Listener:
    host: str
    port: int
    #: The role this listener's IMDS paths serve (None: the default role). SDKs read only
    #: the first line of the role listing, so one IMDS listener serves one role.
    role: str | None = None

    @property
    def url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}/"

    def __str__(self) -> str:
        return self.url.removeprefix("http://").rstrip("/")

    def bound_to(self, port: int) -> Listener:
        return Listener(self.host, port, self.role)


@dataclass(frozen=True)
class RoleSpec:
    """Everything that changes what AssumeRole answers: it is the cache key."""

    role_arn: str
    session_name: str
    duration: int = DEFAULT_DURATION
    external_id: str | None = None
    region: str | None = None
    source_profile: str | None = None
    sts_endpoint_url: str | None = None
    #: The ~/.aws/config profile the role was read from (its region and endpoint settings apply).
    profile: str | None = None
    credential_source: str | None = None
    #: Another configured role whose credentials call STS for this one (role chaining).
    source_role: str | None = None
    web_identity_token_file: str | None = None
    #: The session policy, as compact JSON.
    policy: str | None = None
    policy_arns: tuple[str, ...] = ()
    #: Session tags as (key, value) pairs, sorted by key.
    tags: tuple[tuple[str, str], ...] = ()
    transitive_tag_keys: tuple[str, ...] = ()
    source_identity: str | None = None
    mfa_serial: str | None = None
    #: A command that prints an MFA code (shell words, run without a shell).
    mfa_process: str | None = None
    mfa_duration: int = DEFAULT_MFA_DURATION

    @property
    def name(self) -> str:
        return role_name_of(self.role_arn)

    @property
    def source_description(self) -> str:
        """Where this role's source credentials come from, for operators."""
        if self.web_identity_token_file:
            source = f"web identity token {self.web_identity_token_file}"
        elif self.source_role:
            source = f"role {self.source_role} (chained)"
        elif self.credential_source:
            source = f"credential_source {self.credential_source}"
        elif self.source_profile:
            source = f"profile {self.source_profile}"
        else:
            source = "default credential chain"
        if self.profile:
            source = f"profile {self.profile} <- {source}"
        if self.mfa_serial:
            source += f", MFA {self.mfa_serial}"
        return source

    @property
    def account_id(self) -> str:
        return account_of(self.role_arn)


@dataclass(frozen=True)
class RefreshPolicy:
    """When to refresh and how to back off; every number protects a client behaviour."""

    #: Every credential served has at least this long left while STS answers.
    refresh_ahead: timedelta = timedelta(seconds=DEFAULT_REFRESH_AHEAD)
    #: The background refresh starts this much earlier still, so a slow or failed STS
    #: call has time to be retried before served credentials drop under refresh_ahead.
    lead: timedelta = timedelta(minutes=5)
    #: How long a request waits for a refresh when the cached credentials are valid but
    #: under the floor (the first request after a laptop wakes): botocore and the JS SDK
    #: give up on IMDS after 1 s, so past this they get the still-valid ones instead.
    stale_wait: timedelta = timedelta(seconds=0.5)
    #: Credentials closer than this to expiry count as expired (clock skew with AWS).
    expiry_margin: timedelta = timedelta(seconds=60)
    #: Exponential backoff with full jitter after STS failures.
    backoff_base: timedelta = timedelta(seconds=1)
    backoff_cap: timedelta = timedelta(minutes=5)
    #: The refresh loop re-reads the wall clock at least this often (a laptop's
    #: monotonic clock stops while it sleeps).
    max_sleep: timedelta = timedelta(seconds=60)


@dataclass(frozen=True)
class Identity:
    """What the instance-identity paths answer."""

    instance_id: str
    region: str
    availability_zone: str
    instance_type: str
    account_id: str
    instance_profile_name: str


@dataclass(frozen=True)
class ContainerSettings:
    """The container-credentials endpoint: on when a token or a token file is configured.
    The token itself never appears in repr() (nor, therefore, in logs or tracebacks)."""

    token: str | None = field(default=None, repr=False)
    #: Where the token is read from (and written to, generated, if the file does not exist).
    token_file: Path | None = None

    @property
    def enabled(self) -> bool:
        return self.token is not None or self.token_file is not None


@dataclass(frozen=True)
class Config:
    listeners: tuple[Listener, ...]
    #: Roles by name, the default role first.
    roles: Mapping[str, RoleSpec]
    refresh: RefreshPolicy
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

    @property
    def role(self) -> RoleSpec:
        """The default role: the one IMDS listeners without `=ROLE` serve."""
        return next(iter(self.roles.values()))

    def listener_role(self, listener: Listener) -> str:
        return listener.role or next(iter(self.roles))


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
    if not 0 <= port <= 65535:
        raise ConfigError(key, f"port {port} is out of range", "use a port from 1 to 65535")
    return Listener(host, port, role or None)


def default_session_name(hostname: str | None = None) -> str:
    """`imds-proxy-<host>`, sanitised to STS's RoleSessionName pattern and length."""
    host = hostname if hostname is not None else socket.gethostname()
    cleaned = re.sub(r"[^\w+=,.@-]", "-", host.split(".")[0], flags=re.ASCII)
    return f"imds-proxy-{cleaned}"[:64].rstrip("-") or "imds-proxy"


def default_instance_id(role_arn: str, hostname: str | None = None) -> str:
    """A stable, plausible instance id: the same host and role give the same id."""
    import hashlib

    host = hostname if hostname is not None else socket.gethostname()
    digest = hashlib.sha256(f"{host}|{role_arn}".encode()).hexdigest()
    return "i-" + digest[:17]


def read_file(path: Path) -> dict[str, Any]:
    """The TOML config file as a flat mapping of known keys."""
    try:
        with path.open("rb") as f:
            data = tomllib.load(f)
    except FileNotFoundError:
        raise ConfigError("config", f"{path} does not exist", "check the --config path") from None
    except tomllib.TOMLDecodeError as e:
        raise ConfigError("config", f"{path} is not valid TOML ({e})", "fix the file") from None
    except OSError as e:
        raise ConfigError("config", f"cannot read {path} ({e.strerror})", "check its permissions") from None
    unknown = sorted(set(data) - set(KEYS) - {"roles"})
    if unknown:
        raise ConfigError(unknown[0], f"unknown key in {path}", f"use one of: {', '.join(KEYS)}")
    return data


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
) -> Config:
    """Build the Config: CLI > environment (`IMDS_PROXY_*`) > file > ~/.aws/config profile > defaults."""
    env_values = read_env(env)
    file_path = config_file or (Path(env[ENV_PREFIX + "CONFIG"]) if env.get(ENV_PREFIX + "CONFIG") else None)
    file_values = read_file(file_path) if file_path else {}
    return build(merge(file_values, env_values, cli), profiles)


def _int(
    values: Mapping[str, Any], key: str, default: int, lo: int, hi: int, unit: str, where: str = ""
) -> int:
    raw = values.get(key, default)
    if isinstance(raw, bool):
        raw = str(raw)
    try:
        value = int(raw)
    except (TypeError, ValueError):
        raise ConfigError(
            where + key, f"{raw!r} is not a whole number", f"give {unit} from {lo} to {hi}"
        ) from None
    if not lo <= value <= hi:
        raise ConfigError(where + key, f"{value} is out of range", f"give {unit} from {lo} to {hi}")
    return value


def _str(values: Mapping[str, Any], key: str, where: str = "") -> str | None:
    raw = values.get(key)
    if raw is None:
        return None
    if not isinstance(raw, str):
        raise ConfigError(where + key, f"{raw!r} is not a string", "quote the value")
    return raw.strip() or None


def _choice(values: Mapping[str, Any], key: str, default: str, choices: tuple[str, ...]) -> str:
    raw = values.get(key, default)
    value = str(raw).lower() if not isinstance(raw, bool) else {True: "enabled", False: "disabled"}[raw]
    if value not in choices:
        raise ConfigError(key, f"{raw!r} is not allowed", f"use one of: {', '.join(choices)}")
    return value


ROLE_NAME_RE = re.compile(r"[\w+=,.@-]{1,64}", re.ASCII)


def _no_profiles(name: str) -> Mapping[str, Any]:
    raise ConfigError("profile", f"cannot read profile {name!r} here", "use `imds-proxy serve --profile`")


def build_role(
    values: Mapping[str, Any],
    where: str = "",
    profiles: ProfileReader | None = None,
    defaults: Mapping[str, Any] | None = None,
) -> RoleSpec:
    """One role's keys → RoleSpec. `where` prefixes key names in errors (`roles.dev.`).
    With `profile`, the ~/.aws/config profile fills in what the keys leave unset, and
    `defaults` (inherited top-level keys) what both leave unset."""

    def err(key: str, problem: str, fix: str) -> ConfigError:
        return ConfigError(where + key, problem, fix)

    profile = _str(values, "profile", where)
    if profile is not None:
        values = role_params.layer((profiles or _no_profiles)(profile), values)
    values = role_params.layer(defaults or {}, values)
    extras = role_params.parse(values, where)

    role_arn = _str(values, "role_arn", where)
    if role_arn is None:
        raise err(
            "role_arn",
            "no role to serve",
            "pass --role-arn arn:aws:iam::ACCOUNT:role/NAME (or role_arn in the config file, "
            "or IMDS_PROXY_ROLE_ARN)",
        )
    if not ROLE_ARN_RE.fullmatch(role_arn):
        raise err(
            "role_arn", f"{role_arn!r} is not an IAM role ARN", "write arn:aws:iam::123456789012:role/NAME"
        )

    session_name = _str(values, "role_session_name", where) or default_session_name()
    try:
        session_name = role_params.expand_session_name(session_name)
    except ValueError as e:
        raise err("role_session_name", str(e), "use {user} and {host}, e.g. {user}-{host}") from None
    if not SESSION_NAME_RE.fullmatch(session_name):
        raise err(
            "role_session_name",
            f"{session_name!r} does not match STS's pattern",
            "use 2 to 64 characters from letters, digits and +=,.@-_",
        )

    duration = _int(values, "duration", DEFAULT_DURATION, MIN_DURATION, MAX_DURATION, "seconds", where)

    external_id = _str(values, "external_id", where)
    if external_id is not None and not EXTERNAL_ID_RE.fullmatch(external_id):
        raise err(
            "external_id",
            "does not match STS's pattern",
            "use 2 to 1224 characters from letters, digits and +=,.@:/-_",
        )

    region = _str(values, "region", where)
    if region is not None and not REGION_RE.fullmatch(region):
        raise err("region", f"{region!r} is not an AWS region name", "write e.g. eu-west-1")

    endpoint = _str(values, "sts_endpoint_url", where)
    if endpoint is not None and not re.fullmatch(r"https?://[^\s/]+(/\S*)?", endpoint):
        raise err("sts_endpoint_url", f"{endpoint!r} is not an http(s) URL", "write https://HOST[:PORT]")

    return RoleSpec(
        role_arn=role_arn,
        session_name=session_name,
        duration=duration,
        external_id=external_id,
        region=region,
        source_profile=_str(values, "source_profile", where),
        sts_endpoint_url=endpoint,
        **extras,
    )


def build_roles(values: Mapping[str, Any], profiles: ProfileReader | None = None) -> dict[str, RoleSpec]:
    """The top-level role (named after its ARN) and every `[roles.NAME]` table, which
    inherits the top-level role keys it does not set (its `profile` comes before them)."""
    tables = values.get("roles", {})
    if not isinstance(tables, Mapping):
        raise ConfigError("roles", "must be a table of tables", "write [roles.NAME] sections")
    roles: dict[str, RoleSpec] = {}
    if values.get("role_arn") is not None or values.get("profile") is not None or not tables:
        top = build_role(values, profiles=profiles)
        roles[top.name] = top
    not_inherited = ("role_arn", "profile")  # they name one role, not a default for all
    inherited = {k: values[k] for k in ROLE_KEYS if k not in not_inherited and values.get(k) is not None}
    for name, table in tables.items():
        where = f"roles.{name}."
        if not ROLE_NAME_RE.fullmatch(name):
            raise ConfigError(f"roles.{name}", "is not a valid role name", "use letters, digits and +=,.@-_")
        if not isinstance(table, Mapping):
            raise ConfigError(f"roles.{name}", "must be a table", f"write [roles.{name}] with role_arn = ...")
        unknown = sorted(set(table) - set(ROLE_KEYS))
        if unknown:
            raise ConfigError(where + unknown[0], "is not a role key", f"use one of: {', '.join(ROLE_KEYS)}")
        if name in roles:
            raise ConfigError(f"roles.{name}", "is defined twice", "give each role one name")
        # A profile describes this role; the top-level keys are only defaults.
        roles[name] = build_role(table, where, profiles, defaults=inherited)
    role_params.check_source_roles({name: spec.source_role for name, spec in roles.items()})
    return roles


def build(values: Mapping[str, Any], profiles: ProfileReader | None = None) -> Config:
    """Validate merged raw values into a Config. Raises ConfigError naming the key and the fix.
    `profiles` reads ~/.aws/config profiles for roles that name one."""
    unknown = sorted(set(values) - set(KEYS) - {"roles"})
    if unknown:
        raise ConfigError(unknown[0], "is not a configuration key", f"use one of: {', '.join(KEYS)}, roles")
    roles = build_roles(values, profiles)
    role = next(iter(roles.values()))
    duration = min(r.duration for r in roles.values())
    region = role.region

    half = duration // 2
    if "refresh_ahead" in values:
        ahead = _int(values, "refresh_ahead", DEFAULT_REFRESH_AHEAD, 60, half, "seconds")
    else:
        ahead = min(DEFAULT_REFRESH_AHEAD, half)

    raw_listen = values.get("listen", [DEFAULT_LISTEN])
    if isinstance(raw_listen, str):
        raw_listen = [raw_listen]
    if not isinstance(raw_listen, list | tuple) or not raw_listen:
        raise ConfigError("listen", "needs at least one HOST:PORT", f'e.g. listen = ["{DEFAULT_LISTEN}"]')
    listeners = tuple(dict.fromkeys(parse_listener(str(v)) for v in raw_listen))
    for listener in listeners:
        if listener.role is not None and listener.role not in roles:
            raise ConfigError(
                "listen",
                f"{listener} serves role {listener.role!r}, which is not configured",
                f"use one of: {', '.join(roles)}",
            )

    identity_region = region or DEFAULT_REGION
    az = _str(values, "availability_zone") or identity_region + "a"
    if not re.fullmatch(re.escape(identity_region) + r"[a-z]", az):
        raise ConfigError(
            "availability_zone",
            f"{az!r} is not {identity_region} plus one letter",
            f"write e.g. {identity_region}b (the AWS CLI derives the region by dropping the letter)",
        )
    instance_id = _str(values, "instance_id") or default_instance_id(role.role_arn)
    if not INSTANCE_ID_RE.fullmatch(instance_id):
        raise ConfigError(
            "instance_id",
            f"{instance_id!r} is not an instance id",
            "write i- and 8 or 17 hex digits",
        )
    instance_type = _str(values, "instance_type") or "t3.micro"
    if not re.fullmatch(r"[a-z0-9-]+\.[a-z0-9]+", instance_type):
        raise ConfigError(
            "instance_type", f"{instance_type!r} is not an instance type", "write e.g. t3.micro"
        )

    identity = Identity(
        instance_id=instance_id,
        region=identity_region,
        availability_zone=az,
        instance_type=instance_type,
        account_id=role.account_id,
        instance_profile_name=role.name,
    )

    container = build_container(values)
    clients = build_clients(values.get("clients"), roles)
    if clients.configured and not container.enabled:
        raise ConfigError(
            "clients",
            "maps clients to roles, but the container endpoint is off",
            "set container_token_file (or container_token) as well",
        )

    log_format = _choice(values, "log_format", "text", ("text", "json"))
    log_level = _choice(values, "log_level", "info", ("debug", "info", "warning", "error")).upper()
    imdsv1 = _choice(values, "imdsv1", "disabled", ("enabled", "disabled")) == "enabled"

    return Config(
        listeners=listeners,
        roles=MappingProxyType(roles),
        refresh=RefreshPolicy(refresh_ahead=timedelta(seconds=ahead)),
        identity=identity,
        imdsv1=imdsv1,
        log_format=log_format,  # type: ignore[arg-type]
        log_level=log_level,
        container=container,
        clients=clients,
        **_mfa_and_control(values),
    )


def container_token_problem(token: str) -> str | None:
    """Why a container authorization token is unusable, or None. It is sent verbatim as the
    Authorization header: botocore, Go and JS refuse CR/LF and none strips it (protocol.md
    §5). The reason never quotes the token."""
    if len(token) < MIN_CONTAINER_TOKEN:
        return f"is shorter than {MIN_CONTAINER_TOKEN} characters"
    if token != token.strip():
        return "starts or ends with whitespace or a line break, which SDKs send as is and refuse"
    if not all(" " <= c <= "~" for c in token):
        return "has characters other than printable ASCII (not a valid header value)"
    return None


def build_container(values: Mapping[str, Any]) -> ContainerSettings:
    token = values.get("container_token")
    if token is not None and not isinstance(token, str):
        raise ConfigError("container_token", "is not a string", "quote the value")
    token = token or None
    file = _str(values, "container_token_file")
    if token is not None and file is not None:
        raise ConfigError(
            "container_token", "is set together with container_token_file", "give only one of them"
        )
    if token is not None and (problem := container_token_problem(token)):
        raise ConfigError("container_token", problem, "use a random value, e.g. `openssl rand -hex 32`")
    return ContainerSettings(token=token, token_file=Path(file).expanduser() if file else None)


def _mfa_and_control(values: Mapping[str, Any]) -> dict[str, Any]:
    """The daemon-wide keys of the control socket and the MFA warning."""
    socket_path = _str(values, "control_socket")
    notify = _str(values, "notify_command")
    try:
        notify_argv = tuple(shlex.split(notify)) if notify else None
    except ValueError:
        notify_argv = ()
    if notify_argv == ():
        raise ConfigError("notify_command", "is not a command", 'write e.g. notify_command = "notify-send"')
    warn = _int(values, "mfa_warn_ahead", DEFAULT_MFA_WARN_AHEAD, 60, 86400, "seconds")
    return {
        "control_socket": Path(socket_path).expanduser() if socket_path else None,
        "mfa_warn_ahead": timedelta(seconds=warn),
        "notify_command": notify_argv,
    }
