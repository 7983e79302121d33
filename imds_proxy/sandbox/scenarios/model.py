"""Sandbox scenarios: a small AWS world (accounts, users, roles, buckets) and the role the daemon
serves from it, as frozen values (read from files by `scenarios.file`). Pure: no moto and no boto3 here."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal

DEFAULT_ACCOUNT = "123456789012"  # moto's default account
DEFAULT_REGION = "us-east-1"
#: The service an instance profile's role is assumed by.
EC2 = "ec2.amazonaws.com"
#: The IAM user the sandbox creates to stand in for the EC2 service (see sandbox.iam); reserved.
EC2_STAND_IN = "imds-proxy-ec2"
IfDenied = Literal["exit", "serve-error-document"]


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
