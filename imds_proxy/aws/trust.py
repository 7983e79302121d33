"""Reading a role's trust policy: does a statement designate a caller (its ARN, its account, or
a service), and what do its conditions ask for (ExternalId, MFA). Pure; shared by doctor's
explanation of a denial and the sandbox's IAM enforcement."""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from imds_proxy.config.arns import account_of

ASSUME_ROLE = "sts:AssumeRole"
#: Condition keys that mean "only with MFA" (AWS's documented MFA condition keys).
MFA_KEYS = ("aws:multifactorauthpresent", "aws:multifactorauthage")
EXTERNAL_ID_KEY = "sts:externalid"


def listed(value: Any) -> list[Any]:
    return value if isinstance(value, list) else [] if value is None else [value]


def wildcard_match(patterns: Iterable[Any], value: str, *, ignore_case: bool = True) -> bool:
    """IAM wildcard match (`*`, `?`); case-insensitive by default, as IAM compares action names."""
    for p in patterns:
        rx = re.escape(str(p)).replace(r"\*", ".*").replace(r"\?", ".")
        if re.fullmatch(rx, value, re.IGNORECASE if ignore_case else 0):
            return True
    return False


def names_of(caller: str) -> set[str]:
    """Every AWS principal string that designates `caller` in a trust policy."""
    account = account_of(caller)
    names = {"*", caller, account, f"arn:aws:iam::{account}:root"}
    session = re.fullmatch(r"arn:aws:sts::(\d{12}):assumed-role/([^/]+)/.+", caller)
    if session:  # a role session is also designated by its role's ARN
        names.add(f"arn:aws:iam::{session.group(1)}:role/{session.group(2)}")
    return names


def principal_matches(principal: Any, caller: str, service: str | None) -> bool:
    """Does a statement's Principal designate the caller (an ARN), or `service` for a stand-in?"""
    if principal == "*":
        return True
    if not isinstance(principal, dict):
        return False
    if service is not None:
        return service in listed(principal.get("Service"))
    aws = {str(p) for p in listed(principal.get("AWS"))}
    aws |= {re.sub(r":role/.*/", ":role/", p) for p in aws}  # a role ARN may carry a path
    return bool(aws & names_of(caller))


def concerns_assume_role(statement: Mapping[str, Any]) -> bool:
    if "Action" in statement:
        return wildcard_match(listed(statement["Action"]), ASSUME_ROLE)
    return not wildcard_match(listed(statement.get("NotAction")), ASSUME_ROLE)


def statements(document: str | Mapping[str, Any]) -> list[Mapping[str, Any]]:
    """A policy document's statements (boto3 hands GetRole's document over already parsed)."""
    doc = json.loads(document) if isinstance(document, str) else document
    return [s for s in listed(doc.get("Statement")) if isinstance(s, Mapping)]


@dataclass(frozen=True)
class TrustReading:
    """What a trust policy says about one caller: whether it is named, and what the statements
    naming it require. `principals` lists who the policy trusts, for the message."""

    named: bool
    denied: bool
    principals: tuple[str, ...]
    external_ids: tuple[str, ...]
    needs_mfa: bool


def read_trust(document: str | Mapping[str, Any], caller: str) -> TrustReading:
    """How the trust policy treats `caller`'s sts:AssumeRole (conditions read, not judged)."""
    named = denied = needs_mfa = False
    principals: list[str] = []
    external_ids: list[str] = []
    for st in statements(document):
        if not concerns_assume_role(st):
            continue
        principal = st.get("Principal")
        if isinstance(principal, dict):
            principals += [str(p) for kind in ("AWS", "Service") for p in listed(principal.get(kind))]
        elif principal == "*":
            principals.append("*")
        if not principal_matches(principal, caller, None):
            continue
        if st.get("Effect") == "Deny":
            denied = True
            continue
        named = True
        for tests in (st.get("Condition") or {}).values():
            for key, expected in (tests or {}).items():
                if key.lower() == EXTERNAL_ID_KEY:
                    external_ids += [str(e) for e in listed(expected)]
                elif key.lower() in MFA_KEYS:
                    needs_mfa = True
    return TrustReading(named, denied, tuple(dict.fromkeys(principals)), tuple(external_ids), needs_mfa)
