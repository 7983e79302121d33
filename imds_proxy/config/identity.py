"""Instance identity: what the instance-identity paths answer (instance id, region, AZ,
instance type, account, profile name), from config keys or derived from the host and role."""

from __future__ import annotations

import hashlib
import re
import socket
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from imds_proxy.config.roles import DEFAULT_REGION, RoleSpec
from imds_proxy.config.values import text
from imds_proxy.errors import ConfigError

INSTANCE_ID_RE = re.compile(r"i-[0-9a-f]{8,17}")


@dataclass(frozen=True)
class Identity:
    """What the instance-identity paths answer."""

    instance_id: str
    region: str
    availability_zone: str
    instance_type: str
    account_id: str
    instance_profile_name: str


def default_instance_id(role_arn: str, hostname: str | None = None) -> str:
    """A stable, plausible instance id: the same host and role give the same id."""
    host = hostname if hostname is not None else socket.gethostname()
    digest = hashlib.sha256(f"{host}|{role_arn}".encode()).hexdigest()
    return "i-" + digest[:17]


def build_identity(values: Mapping[str, Any], role: RoleSpec) -> Identity:
    """The identity of an instance whose instance profile is the default `role`."""
    identity_region = role.region or DEFAULT_REGION
    az = text(values, "availability_zone") or identity_region + "a"
    if not re.fullmatch(re.escape(identity_region) + r"[a-z]", az):
        raise ConfigError(
            "availability_zone",
            f"{az!r} is not {identity_region} plus one letter",
            f"write e.g. {identity_region}b (the AWS CLI derives the region by dropping the letter)",
        )
    instance_id = text(values, "instance_id") or default_instance_id(role.role_arn)
    if not INSTANCE_ID_RE.fullmatch(instance_id):
        raise ConfigError(
            "instance_id",
            f"{instance_id!r} is not an instance id",
            "write i- and 8 or 17 hex digits",
        )
    instance_type = text(values, "instance_type") or "t3.micro"
    if not re.fullmatch(r"[a-z0-9-]+\.[a-z0-9]+", instance_type):
        raise ConfigError(
            "instance_type", f"{instance_type!r} is not an instance type", "write e.g. t3.micro"
        )

    return Identity(
        instance_id=instance_id,
        region=identity_region,
        availability_zone=az,
        instance_type=instance_type,
        account_id=role.account_id,
        instance_profile_name=role.name,
    )
