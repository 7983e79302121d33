"""ARNs: the account and the role name read from one, for config and credentials alike."""

from __future__ import annotations


def role_name_of(role_arn: str) -> str:
    """`arn:aws:iam::123:role/path/name` → `name`."""
    return role_arn.rsplit("/", 1)[-1]


def account_of(arn: str) -> str:
    """The account id: the fifth field of an ARN."""
    parts = arn.split(":")
    return parts[4] if len(parts) > 4 else ""
