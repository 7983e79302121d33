"""Roles: the RoleSpec (everything that changes what AssumeRole answers) and how one is built
from its keys, a ~/.aws/config profile and the inherited top-level keys; `[roles.NAME]` tables."""

from __future__ import annotations

import re
import socket
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from imds_proxy.config import role_params
from imds_proxy.config.arns import account_of, role_name_of
from imds_proxy.config.role_params import DEFAULT_MFA_DURATION
from imds_proxy.config.values import text, whole_number
from imds_proxy.errors import ConfigError

DEFAULT_DURATION = 3600
#: The region when a role names none: what IMDS reports, and where botocore's own STS calls
#: for a source profile without a region go.
DEFAULT_REGION = "us-east-1"

# STS limits (protocol.md §6).
MIN_DURATION, MAX_DURATION = 900, 43200
SESSION_NAME_RE = re.compile(r"[\w+=,.@-]{2,64}", re.ASCII)  # AWS's \w is ASCII-only
EXTERNAL_ID_RE = re.compile(r"[\w+=,.@:/-]{2,1224}", re.ASCII)
ROLE_ARN_RE = re.compile(r"arn:aws[\w-]*:iam::\d{12}:role/[\w+=,.@/-]{1,512}", re.ASCII)
REGION_RE = re.compile(r"[a-z]{2}(-[a-z]+)+-\d+")
ROLE_NAME_RE = re.compile(r"[\w+=,.@-]{1,64}", re.ASCII)

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

#: Reads one ~/.aws/config profile as role keys (profiles.read_profile; a dict in tests).
ProfileReader = Callable[[str], Mapping[str, Any]]


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


def default_session_name(hostname: str | None = None) -> str:
    """`imds-proxy-<host>`, sanitised to STS's RoleSessionName pattern and length."""
    host = hostname if hostname is not None else socket.gethostname()
    cleaned = re.sub(r"[^\w+=,.@-]", "-", host.split(".")[0], flags=re.ASCII)
    return f"imds-proxy-{cleaned}"[:64].rstrip("-") or "imds-proxy"


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

    profile = text(values, "profile", where)
    if profile is not None:
        values = role_params.layer((profiles or _no_profiles)(profile), values)
    values = role_params.layer(defaults or {}, values)
    extras = role_params.parse(values, where)

    role_arn = text(values, "role_arn", where)
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

    session_name = text(values, "role_session_name", where) or default_session_name()
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

    duration = whole_number(
        values, "duration", DEFAULT_DURATION, MIN_DURATION, MAX_DURATION, "seconds", where
    )

    external_id = text(values, "external_id", where)
    if external_id is not None and not EXTERNAL_ID_RE.fullmatch(external_id):
        raise err(
            "external_id",
            "does not match STS's pattern",
            "use 2 to 1224 characters from letters, digits and +=,.@:/-_",
        )

    region = text(values, "region", where)
    if region is not None and not REGION_RE.fullmatch(region):
        raise err("region", f"{region!r} is not an AWS region name", "write e.g. eu-west-1")

    endpoint = text(values, "sts_endpoint_url", where)
    if endpoint is not None and not re.fullmatch(r"https?://[^\s/]+(/\S*)?", endpoint):
        raise err("sts_endpoint_url", f"{endpoint!r} is not an http(s) URL", "write https://HOST[:PORT]")

    return RoleSpec(
        role_arn=role_arn,
        session_name=session_name,
        duration=duration,
        external_id=external_id,
        region=region,
        source_profile=text(values, "source_profile", where),
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
