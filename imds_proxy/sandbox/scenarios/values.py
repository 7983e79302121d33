"""Typed reads of a scenario file's raw TOML values, every failure one line naming the file, the
key and the fix; policy documents checked for the usual mistakes. Pure: no moto and no boto3 here."""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from typing import Any, NoReturn

from imds_proxy.errors import ScenarioError
from imds_proxy.sandbox.scenarios.model import DEFAULT_ACCOUNT, ManagedPolicy

_ACCOUNT_RE = re.compile(r"\d{12}")
_AWS_MANAGED_RE = re.compile(r"arn:aws:iam::aws:policy/[\w+=,.@/-]+", re.ASCII)
POLICY_NAME_RE = re.compile(r"[\w+=,.@-]{1,128}", re.ASCII)
POLICY_NAME = "a policy name (1-128 letters, digits, +=,.@-_)"


class Reader:
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
            self.string(name, f"{key}.policies.{name}", POLICY_NAME_RE, POLICY_NAME)
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
