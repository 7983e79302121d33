"""Sandbox scenarios: a small AWS world (accounts, users, roles, buckets) and the role the daemon
serves from it, as frozen values; the built-in ones by name. Pure: no moto and no boto3 here."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any, Literal

from imds_proxy.errors import ConfigError

DEFAULT_SCENARIO = "photos"
DEFAULT_ACCOUNT = "123456789012"  # moto's default account
DEFAULT_REGION = "us-east-1"
#: The service an instance profile's role is assumed by.
EC2 = "ec2.amazonaws.com"
#: The IAM user the sandbox creates to stand in for the EC2 service (see sandbox_iam); reserved.
EC2_STAND_IN = "imds-proxy-ec2"
IfDenied = Literal["exit", "serve-error-document"]

_BUILTIN_DIR = "builtin_scenarios"


@dataclass(frozen=True)
class ManagedPolicy:
    name: str
    account: str
    document: str

    @property
    def arn(self) -> str:
        return f"arn:aws:iam::{self.account}:policy/{self.name}"


@dataclass(frozen=True)
class User:
    name: str
    account: str
    policies: Mapping[str, str]  # inline: name → JSON document
    managed_policies: tuple[str, ...]  # ARNs

    @property
    def arn(self) -> str:
        return f"arn:aws:iam::{self.account}:user/{self.name}"


@dataclass(frozen=True)
class Role:
    name: str
    account: str
    trust: str
    policies: Mapping[str, str]
    managed_policies: tuple[str, ...]

    @property
    def arn(self) -> str:
        return f"arn:aws:iam::{self.account}:role/{self.name}"


@dataclass(frozen=True)
class InstanceProfile:
    name: str
    account: str
    role: str


@dataclass(frozen=True)
class Bucket:
    name: str
    account: str
    objects: Mapping[str, str]


@dataclass(frozen=True)
class Call:
    """Any other API call made while the world is built (no IAM enforced yet)."""

    key: str  # where it is in the file, for errors
    service: str
    operation: str
    account: str
    params: Mapping[str, Any]


@dataclass(frozen=True)
class Scenario:
    name: str
    source: str
    description: str
    region: str
    role: Role  # the role the daemon serves
    assumed_by: str  # EC2, or the name of a user in `users`
    if_denied: IfDenied
    policies: tuple[ManagedPolicy, ...]
    users: tuple[User, ...]
    roles: tuple[Role, ...]
    instance_profiles: tuple[InstanceProfile, ...]
    buckets: tuple[Bucket, ...]
    calls: tuple[Call, ...]
    try_allowed: tuple[str, ...]
    try_denied: tuple[str, ...]
    variant: str | None
    variants: Mapping[str, str]  # name → description

    @property
    def caller(self) -> User | None:
        """The user whose keys the daemon calls STS with; None when EC2 assumes the role."""
        return next((u for u in self.users if u.name == self.assumed_by), None)

    @property
    def accounts(self) -> tuple[str, ...]:
        things: list[Any] = [*self.policies, *self.users, *self.roles, *self.instance_profiles]
        return tuple(sorted({t.account for t in [*things, *self.buckets, *self.calls]}))


def builtin_names() -> list[str]:
    """The built-in scenarios, the default first."""
    names = sorted(
        p.name.removesuffix(".toml")
        for p in resources.files("imds_proxy").joinpath(_BUILTIN_DIR).iterdir()
        if p.name.endswith(".toml")
    )
    return sorted(names, key=lambda n: n != DEFAULT_SCENARIO)


def load(spec: str, variant: str | None = None) -> Scenario:
    """A built-in scenario by name, or a scenario file by path."""
    from imds_proxy import scenario_file  # it imports the types above

    if "/" not in spec and not spec.endswith(".toml"):
        if spec not in builtin_names():
            raise ConfigError(
                "scenario",
                f"there is no built-in scenario {spec!r}",
                f"use one of: {', '.join(builtin_names())}, or the path of a .toml file",
            )
        text = resources.files("imds_proxy").joinpath(_BUILTIN_DIR, f"{spec}.toml").read_text("utf-8")
        return scenario_file.parse(text, f"{spec}.toml (built in)", spec, variant)
    path = Path(spec)
    try:
        text = path.read_text("utf-8")
    except FileNotFoundError:
        raise ConfigError("scenario", f"{path} does not exist", "check the --scenario path") from None
    except (OSError, UnicodeDecodeError) as e:
        raise ConfigError("scenario", f"cannot read {path} ({e})", "check the file") from None
    return scenario_file.parse(text, str(path), path.stem, variant)


def catalogue() -> str:
    """`sandbox --list-scenarios`: each built-in scenario, its variants, what it shows."""
    lines = []
    for name in builtin_names():
        s = load(name)
        default = " (default)" if name == DEFAULT_SCENARIO else ""
        lines.append(f"{name}{default}\n    {s.description}")
        lines += [f"    --variant {v}: {d}" for v, d in s.variants.items()]
    return "\n".join(lines)
