"""Scenario files: TOML text validated into a Scenario, every failure one line naming the file, the
key and the fix. Pure: no moto and no boto3 here."""

from __future__ import annotations

import json
import re
import tomllib
from collections.abc import Callable, Iterator
from typing import Any, NoReturn

from imds_proxy.errors import ScenarioError
from imds_proxy.scenarios import (
    DEFAULT_ACCOUNT,
    DEFAULT_REGION,
    EC2,
    EC2_STAND_IN,
    Bucket,
    Call,
    InstanceProfile,
    ManagedPolicy,
    Role,
    Scenario,
    User,
)

_ACCOUNT_RE = re.compile(r"\d{12}")
_NAME_RE = re.compile(r"[\w+=,.@-]{1,64}", re.ASCII)  # IAM user, role and instance profile names
_POLICY_NAME_RE = re.compile(r"[\w+=,.@-]{1,128}", re.ASCII)
_BUCKET_RE = re.compile(r"[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]")
_AWS_MANAGED_RE = re.compile(r"arn:aws:iam::aws:policy/[\w+=,.@/-]+", re.ASCII)
_REGION_RE = re.compile(r"[a-z]{2}(-[a-z]+)+-\d+")
_TOP = (
    "description",
    "account",
    "region",
    "serve",
    "try",
    "policies",
    "users",
    "roles",
    "instance_profiles",
    "buckets",
    "calls",
    "variants",
)
#: Sections whose entries are named tables; a variant replaces keys inside their entries.
_NAMED = ("policies", "users", "roles", "instance_profiles", "buckets")
_POLICY = "a policy name (1-128 letters, digits, +=,.@-_)"


class _Reader:
    """Typed access to raw TOML values; every failure names the file and the key."""

    def __init__(self, source: str, shown: Callable[[str], str] = lambda k: k) -> None:
        self.source = source
        self.shown = shown
        self.default_account = DEFAULT_ACCOUNT

    def fail(self, key: str, problem: str, fix: str) -> NoReturn:
        raise ScenarioError(self.source, self.shown(key), problem, fix)

    def table(self, raw: Any, key: str) -> dict[str, Any]:
        if not isinstance(raw, dict):
            self.fail(key, "is not a table", f"write it as [{key}]")
        return raw

    def known(self, raw: dict[str, Any], key: str, allowed: tuple[str, ...]) -> None:
        for k in raw:
            if k not in allowed:
                where = f"{key}.{k}" if key else k
                self.fail(where, "is not a scenario key", f"use one of: {', '.join(allowed)}")

    def string(self, raw: Any, key: str, pattern: re.Pattern[str] | None = None, what: str = "") -> str:
        if not isinstance(raw, str):
            self.fail(key, f"{raw!r} is not a string", "quote the value")
        if pattern is not None and not pattern.fullmatch(raw):
            self.fail(key, f"{raw!r} is not {what}", f"write {what}")
        return raw

    def strings(self, raw: Any, key: str) -> tuple[str, ...]:
        if not isinstance(raw, list) or not all(isinstance(v, str) for v in raw):
            self.fail(key, "is not a list of strings", 'write e.g. ["a", "b"]')
        return tuple(raw)

    def required(self, raw: dict[str, Any], key: str, name: str, fix: str) -> Any:
        if name not in raw:
            self.fail(f"{key}.{name}" if key else name, "is missing", fix)
        return raw[name]

    def account(self, raw: dict[str, Any], key: str, default: str) -> str:
        if "account" not in raw:
            return default
        where = f"{key}.account" if key else "account"
        return self.string(raw["account"], where, _ACCOUNT_RE, "a 12-digit account id")

    def document(self, raw: Any, key: str, *, trust: bool) -> str:
        """A policy document (a JSON string, or a TOML table), checked for the usual mistakes."""
        if isinstance(raw, str):
            try:
                doc = json.loads(raw)
            except json.JSONDecodeError as e:
                self.fail(
                    key, f"is not valid JSON ({e.msg} at line {e.lineno} column {e.colno})", "fix the JSON"
                )
        elif isinstance(raw, dict):
            doc = raw
        else:
            self.fail(key, "is not a policy document", "write the policy as a JSON string or a TOML table")
        statements = doc.get("Statement") if isinstance(doc, dict) else None
        if isinstance(statements, dict):
            statements = [statements]
        if not isinstance(statements, list) or not statements:
            self.fail(key, "has no Statement", 'write {"Version": "2012-10-17", "Statement": [...]}')
        for n, st in enumerate(statements, 1):
            if not isinstance(st, dict):
                self.fail(key, f"statement {n} is not an object", "write each statement as {...}")
            if st.get("Effect") not in ("Allow", "Deny"):
                self.fail(key, f"statement {n} has Effect {st.get('Effect')!r}", 'use "Allow" or "Deny"')
            if "Action" not in st and "NotAction" not in st:
                self.fail(key, f"statement {n} has no Action", 'add e.g. "Action": "sts:AssumeRole"')
            if trust and "Principal" not in st:
                self.fail(
                    key,
                    f"statement {n} has no Principal",
                    'say who may assume the role, e.g. "Principal": {"Service": "ec2.amazonaws.com"}',
                )
            if not trust and "Resource" not in st and "NotResource" not in st:
                self.fail(
                    key, f"statement {n} has no Resource", 'add e.g. "Resource": "arn:aws:s3:::photos/*"'
                )
            if not trust and "Principal" in st:
                self.fail(key, f"statement {n} has a Principal", "only trust policies name principals")
        return json.dumps(doc)

    def inline_policies(self, entry: dict[str, Any], key: str) -> dict[str, str]:
        raw = self.table(entry.get("policies", {}), f"{key}.policies")
        out = {}
        for name, doc in raw.items():
            self.string(name, f"{key}.policies.{name}", _POLICY_NAME_RE, _POLICY)
            out[name] = self.document(doc, f"{key}.policies.{name}", trust=False)
        return out

    def managed(
        self, entry: dict[str, Any], key: str, account: str, policies: dict[str, ManagedPolicy]
    ) -> tuple[str, ...]:
        arns = []
        for n, ref in enumerate(self.strings(entry.get("managed_policies", []), f"{key}.managed_policies")):
            if _AWS_MANAGED_RE.fullmatch(ref):
                arns.append(ref)
            elif ref in policies and policies[ref].account == account:
                arns.append(policies[ref].arn)
            else:
                self.fail(
                    f"{key}.managed_policies[{n}]",
                    f"{ref!r} is not a policy of account {account} in [policies]",
                    "define it under [policies.NAME] in the same account, or give an AWS-managed "
                    "policy's ARN (arn:aws:iam::aws:policy/NAME)",
                )
        return tuple(arns)


def _merge_variant(data: dict[str, Any], name: str, reader: _Reader) -> tuple[dict[str, Any], set[str]]:
    """The scenario with variant `name` applied, and the keys the variant set. A variant replaces the
    keys it gives inside the entries it names (e.g. `[variants.X.roles.foo] trust = ...`)."""
    variants = reader.table(data.get("variants", {}), "variants")
    if name not in variants:
        known = ", ".join(variants) or "none"
        reader.fail("variants", f"there is no variant {name!r}", f"use one of: {known}")
    variant = reader.table(variants[name], f"variants.{name}")
    reader.known(variant, f"variants.{name}", ("description", "serve", "try", *_NAMED))
    merged = {k: v for k, v in data.items() if k != "variants"}
    touched: set[str] = set()
    for section, entries in variant.items():
        if section == "description":
            continue
        entries = reader.table(entries, f"variants.{name}.{section}")
        base = dict(reader.table(merged.get(section, {}), section))
        if section in _NAMED:
            for entry, values in entries.items():
                values = reader.table(values, f"variants.{name}.{section}.{entry}")
                base[entry] = {**reader.table(base.get(entry, {}), f"{section}.{entry}"), **values}
                touched.update(f"{section}.{entry}.{k}" for k in values)
        else:
            base.update(entries)
            touched.update(f"{section}.{k}" for k in entries)
        merged[section] = base
    return merged, touched


def _entries(
    r: _Reader,
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


def _policies(r: _Reader, data: dict[str, Any]) -> dict[str, ManagedPolicy]:
    out = {}
    for name, key, entry, account in _entries(r, data, "policies", ("document",), _POLICY_NAME_RE, _POLICY):
        document = r.required(entry, key, "document", "give the policy document")
        out[name] = ManagedPolicy(name, account, r.document(document, f"{key}.document", trust=False))
    return out


def _users(r: _Reader, data: dict[str, Any], policies: dict[str, ManagedPolicy]) -> dict[str, User]:
    out = {}
    allowed = ("policies", "managed_policies")
    for name, key, entry, account in _entries(r, data, "users", allowed, _NAME_RE, "a user name"):
        if name == EC2_STAND_IN:
            r.fail(key, f"{EC2_STAND_IN} is reserved (it stands in for the EC2 service)", "rename the user")
        out[name] = User(
            name, account, r.inline_policies(entry, key), r.managed(entry, key, account, policies)
        )
    return out


def _roles(r: _Reader, data: dict[str, Any], policies: dict[str, ManagedPolicy]) -> dict[str, Role]:
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


def _profiles(r: _Reader, data: dict[str, Any], roles: dict[str, Role]) -> list[InstanceProfile]:
    out = []
    section = "instance_profiles"
    for name, key, entry, account in _entries(r, data, section, ("role",), _NAME_RE, "a profile name"):
        role = r.string(r.required(entry, key, "role", "name the role it holds"), f"{key}.role")
        if role not in roles or roles[role].account != account:
            r.fail(f"{key}.role", f"{role!r} is not a role of account {account}", "name a role from [roles]")
        out.append(InstanceProfile(name, account, role))
    return out


def _buckets(r: _Reader, data: dict[str, Any]) -> list[Bucket]:
    out = []
    what = "a bucket name (3-63 lower-case letters, digits, dots, hyphens)"
    for name, key, entry, account in _entries(r, data, "buckets", ("objects",), _BUCKET_RE, what):
        objects = r.table(entry.get("objects", {}), f"{key}.objects")
        for okey, body in objects.items():
            r.string(body, f"{key}.objects.{okey}")
        out.append(Bucket(name, account, dict(objects)))
    return out


def _calls(r: _Reader, data: dict[str, Any]) -> list[Call]:
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


def _serve(
    r: _Reader, data: dict[str, Any], roles: dict[str, Role], users: dict[str, User]
) -> dict[str, Any]:
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


def _variants(r: _Reader, data: dict[str, Any]) -> dict[str, str]:
    out = {}
    for name, variant in r.table(data.get("variants", {}), "variants").items():
        variant = r.table(variant, f"variants.{name}")
        out[name] = r.string(
            r.required(variant, f"variants.{name}", "description", "say what the variant changes"),
            f"variants.{name}.description",
        )
    return out


def parse(text: str, source: str, name: str, variant: str | None = None) -> Scenario:
    """Validate a scenario's TOML text. Raises ScenarioError naming `source`, the key and the fix."""
    r = _Reader(source)
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as e:
        r.fail("(file)", f"is not valid TOML ({e})", "fix the syntax")
    r.known(data, "", _TOP)
    variants = _variants(r, data)
    if variant is not None:
        data, touched = _merge_variant(data, variant, r)

        def shown(key: str) -> str:  # a key the variant set is reported where the variant sets it
            hit = any(key == t or key.startswith((t + ".", t + "[")) for t in touched)
            return f"variants.{variant}.{key}" if hit else key

        r = _Reader(source, shown)
    description = r.string(
        r.required(data, "", "description", 'add description = "what this scenario shows"'), "description"
    )
    r.default_account = r.account(data, "", DEFAULT_ACCOUNT)
    region = r.string(
        data.get("region", DEFAULT_REGION), "region", _REGION_RE, "an AWS region, e.g. us-east-1"
    )
    policies = _policies(r, data)
    users = _users(r, data, policies)
    roles = _roles(r, data, policies)
    tries = r.table(data.get("try", {}), "try")
    r.known(tries, "try", ("allowed", "denied"))
    return Scenario(
        name=name,
        source=source,
        description=description,
        region=region,
        **_serve(r, data, roles, users),
        policies=tuple(policies.values()),
        users=tuple(users.values()),
        roles=tuple(roles.values()),
        instance_profiles=tuple(_profiles(r, data, roles)),
        buckets=tuple(_buckets(r, data)),
        calls=tuple(_calls(r, data)),
        try_allowed=r.strings(tries.get("allowed", []), "try.allowed"),
        try_denied=r.strings(tries.get("denied", []), "try.denied"),
        variant=variant,
        variants=variants,
    )
