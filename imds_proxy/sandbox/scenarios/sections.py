"""The sections of a scenario file (`[policies]`, `[users]`, `[roles]`, `[instance_profiles]`,
`[buckets]`, `[[calls]]`, `[serve]`, `[variants]`), each validated into scenario values.
Pure: no moto and no boto3 here."""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

from imds_proxy.sandbox.scenarios.model import (
    EC2,
    EC2_STAND_IN,
    Bucket,
    Call,
    InstanceProfile,
    ManagedPolicy,
    Role,
    User,
)
from imds_proxy.sandbox.scenarios.values import POLICY_NAME, POLICY_NAME_RE, Reader

_NAME_RE = re.compile(r"[\w+=,.@-]{1,64}", re.ASCII)  # IAM user, role and instance profile names
_BUCKET_RE = re.compile(r"[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]")


def _entries(
    r: Reader,
    data: dict[str, Any],
    section: str,
    allowed: tuple[str, ...],
    name_re: re.Pattern[str],
    what: str,
) -> Iterator[tuple[str, str, dict[str, Any], str]]:
    """(name, key, entry, account) for each `[section.NAME]` table."""
    for name, entry in r.table(data.get(section, {}), section).items():
        key = f"{section}.{name}"
        entry = r.table(entry, key)
        r.known(entry, key, ("account", *allowed))
        r.string(name, key, name_re, what)
        yield name, key, entry, r.account(entry, key, r.default_account)


def policies(r: Reader, data: dict[str, Any]) -> dict[str, ManagedPolicy]:
    """`[policies.NAME]`: customer-managed policies, by name."""
    out = {}
    allowed = ("document",)
    for name, key, entry, account in _entries(r, data, "policies", allowed, POLICY_NAME_RE, POLICY_NAME):
        document = r.required(entry, key, "document", "give the policy document")
        out[name] = ManagedPolicy(name, account, r.document(document, f"{key}.document", trust=False))
    return out


def users(r: Reader, data: dict[str, Any], policies: dict[str, ManagedPolicy]) -> dict[str, User]:
    """`[users.NAME]`: IAM users with their inline and managed policies, by name."""
    out = {}
    allowed = ("policies", "managed_policies")
    for name, key, entry, account in _entries(r, data, "users", allowed, _NAME_RE, "a user name"):
        if name == EC2_STAND_IN:
            r.fail(key, f"{EC2_STAND_IN} is reserved (it stands in for the EC2 service)", "rename the user")
        out[name] = User(
            name, account, r.inline_policies(entry, key), r.managed(entry, key, account, policies)
        )
    return out


def roles(r: Reader, data: dict[str, Any], policies: dict[str, ManagedPolicy]) -> dict[str, Role]:
    """`[roles.NAME]`: IAM roles with their trust and permissions policies, by name."""
    out = {}
    allowed = ("trust", "policies", "managed_policies")
    for name, key, entry, account in _entries(r, data, "roles", allowed, _NAME_RE, "a role name"):
        trust = r.required(entry, key, "trust", "give the role's trust policy (who may assume it)")
        out[name] = Role(
            name,
            account,
            r.document(trust, f"{key}.trust", trust=True),
            r.inline_policies(entry, key),
            r.managed(entry, key, account, policies),
        )
    return out


def instance_profiles(r: Reader, data: dict[str, Any], roles: dict[str, Role]) -> list[InstanceProfile]:
    """`[instance_profiles.NAME]`: each holding a role of its own account."""
    out = []
    section = "instance_profiles"
    for name, key, entry, account in _entries(r, data, section, ("role",), _NAME_RE, "a profile name"):
        role = r.string(r.required(entry, key, "role", "name the role it holds"), f"{key}.role")
        if role not in roles or roles[role].account != account:
            r.fail(f"{key}.role", f"{role!r} is not a role of account {account}", "name a role from [roles]")
        out.append(InstanceProfile(name, account, role))
    return out


def buckets(r: Reader, data: dict[str, Any]) -> list[Bucket]:
    """`[buckets.NAME]`: S3 buckets and the objects in them."""
    out = []
    what = "a bucket name (3-63 lower-case letters, digits, dots, hyphens)"
    for name, key, entry, account in _entries(r, data, "buckets", ("objects",), _BUCKET_RE, what):
        objects = r.table(entry.get("objects", {}), f"{key}.objects")
        for okey, body in objects.items():
            r.string(body, f"{key}.objects.{okey}")
        out.append(Bucket(name, account, dict(objects)))
    return out


def calls(r: Reader, data: dict[str, Any]) -> list[Call]:
    """`[[calls]]`: any other API calls made while the world is built."""
    raw = data.get("calls", [])
    if not isinstance(raw, list):
        r.fail("calls", "is not a list of tables", "write each call as [[calls]]")
    out = []
    for n, entry in enumerate(raw):
        key = f"calls[{n}]"
        entry = r.table(entry, key)
        r.known(entry, key, ("service", "operation", "account", "params"))
        service = r.string(
            r.required(entry, key, "service", 'name the service, e.g. service = "ssm"'),
            f"{key}.service",
            re.compile(r"[a-z0-9-]+"),
            "a service name, e.g. ssm",
        )
        operation = r.string(
            r.required(entry, key, "operation", 'name the boto3 method, e.g. operation = "put_parameter"'),
            f"{key}.operation",
            re.compile(r"[a-z0-9_]+"),
            "a boto3 method name, e.g. put_parameter",
        )
        params = r.table(entry.get("params", {}), f"{key}.params")
        out.append(Call(key, service, operation, r.account(entry, key, r.default_account), params))
    return out


def serve(
    r: Reader, data: dict[str, Any], roles: dict[str, Role], users: dict[str, User]
) -> dict[str, Any]:
    """`[serve]`: the role the daemon serves, who assumes it, and what happens if it is denied."""
    serve = r.table(r.required(data, "", "serve", "add a [serve] table naming the role to serve"), "serve")
    r.known(serve, "serve", ("role", "assumed_by", "if_denied"))
    role = r.string(r.required(serve, "serve", "role", "name the role the daemon serves"), "serve.role")
    if role not in roles:
        r.fail(
            "serve.role", f"{role!r} is not in [roles]", f"name one of: {', '.join(roles) or '(none yet)'}"
        )
    assumed_by = r.string(serve.get("assumed_by", EC2), "serve.assumed_by")
    if assumed_by != EC2 and assumed_by not in users:
        r.fail(
            "serve.assumed_by",
            f"{assumed_by!r} is neither {EC2} nor a user in [users]",
            f"write {EC2} (an instance profile) or the name of a user whose keys call AssumeRole",
        )
    if_denied = serve.get("if_denied", "exit")
    if if_denied not in ("exit", "serve-error-document"):
        r.fail("serve.if_denied", f"{if_denied!r} is not allowed", "use exit or serve-error-document")
    return {"role": roles[role], "assumed_by": assumed_by, "if_denied": if_denied}


def variants(r: Reader, data: dict[str, Any]) -> dict[str, str]:
    """`[variants.NAME]`: each variant's description, by name (`scenarios.file` applies one)."""
    out = {}
    for name, variant in r.table(data.get("variants", {}), "variants").items():
        variant = r.table(variant, f"variants.{name}")
        out[name] = r.string(
            r.required(variant, f"variants.{name}", "description", "say what the variant changes"),
            f"variants.{name}.description",
        )
    return out
