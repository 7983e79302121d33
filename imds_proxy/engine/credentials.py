"""The frozen Credentials value, its response bodies rendered once, the Source protocol, the Clock
type and the wire rendering."""

from __future__ import annotations

import json
from collections.abc import Callable, Hashable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, Protocol

from imds_proxy.config.arns import role_name_of

#: A wall clock: returns an aware UTC datetime. Injected everywhere "now" matters.
Clock = Callable[[], datetime]


def utc_now() -> datetime:
    """The real wall clock (UTC, aware)."""
    return datetime.now(UTC)


def wire_time(moment: datetime) -> str:
    """`YYYY-MM-DDTHH:MM:SSZ`: whole seconds, UTC, the only layout botocore's
    static-stability code parses (protocol.md checklist #4)."""
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def key_suffix(access_key_id: str) -> str:
    """What logs may show of an access key id: its last four characters."""
    return "…" + access_key_id[-4:]


@dataclass(frozen=True)
class Credentials:
    """One set of temporary role credentials. Secrets are kept out of repr()."""

    access_key_id: str
    secret_access_key: str = field(repr=False)
    session_token: str = field(repr=False)
    expiration: datetime
    last_updated: datetime
    role_arn: str
    account_id: str

    def remaining(self, now: datetime) -> timedelta:
        return self.expiration - now

    @property
    def key_suffix(self) -> str:
        return key_suffix(self.access_key_id)

    @property
    def role_name(self) -> str:
        return role_name_of(self.role_arn)

    def imds_document(self, *, extended: bool = False) -> dict[str, Any]:
        """The body of `…/iam/security-credentials/<role>` (extended: plus AccountId)."""
        doc: dict[str, Any] = {
            "Code": "Success",
            "LastUpdated": wire_time(self.last_updated),
            "Type": "AWS-HMAC",
            "AccessKeyId": self.access_key_id,
            "SecretAccessKey": self.secret_access_key,
            "Token": self.session_token,
            "Expiration": wire_time(self.expiration),
        }
        if extended:
            doc["AccountId"] = self.account_id
        return doc

    def container_document(self) -> dict[str, Any]:
        """The body the container-credentials protocol answers with."""
        return {
            "AccessKeyId": self.access_key_id,
            "SecretAccessKey": self.secret_access_key,
            "Token": self.session_token,
            "Expiration": wire_time(self.expiration),
            "AccountId": self.account_id,
            "RoleArn": self.role_arn,
        }


def imds_error_document(code: str, message: str, now: datetime) -> dict[str, Any]:
    """What EC2 answers (HTTP 200) for a role it cannot use: a Code other than
    "Success", a Message and no keys. botocore then finds no credentials; the Go
    SDKs report `Code: Message`."""
    return {"Code": code, "Message": message, "LastUpdated": wire_time(now)}


def to_json(doc: dict[str, Any]) -> str:
    """AWS's own layout for IMDS JSON: two-space indent."""
    return json.dumps(doc, indent=2)


@dataclass(frozen=True)
class Served:
    """One credential set with the bodies every channel answers with, rendered once when the set
    arrives and dropped with it (the engine holds them beside its cache entry)."""

    credentials: Credentials
    imds: bytes = field(repr=False)
    imds_extended: bytes = field(repr=False)
    container: bytes = field(repr=False)
    #: What logs show of the key (Credentials.key_suffix), worked out once.
    key_suffix: str = ""

    @classmethod
    def of(cls, creds: Credentials) -> Served:
        return cls(
            creds,
            to_json(creds.imds_document()).encode(),
            to_json(creds.imds_document(extended=True)).encode(),
            json.dumps(creds.container_document()).encode(),
            creds.key_suffix,
        )


class Source(Protocol):
    """Where a role's credentials come from (STS AssumeRole, a profile, a fake in tests)."""

    @property
    def role_arn(self) -> str: ...

    @property
    def cache_key(self) -> Hashable:
        """Everything that changes the answer: two sources with equal keys are interchangeable."""
        ...

    @property
    def description(self) -> str:
        """Whose keys call for the credentials, in words for operators (`imds-proxy roles`)."""
        ...

    @property
    def upstream(self) -> str | None:
        """The configured role whose credentials sign this source's call (role chaining):
        the engine gets them first, from its own cache, and hands them to `fetch`."""
        ...

    async def fetch(self, upstream: Credentials | None = None) -> Credentials:
        """New credentials (signed with `upstream`'s when the source chains off a role);
        raises SourceError. Must not block the event loop."""
        ...


class WrappedSource:
    """A Source around another (served lifetime, the sandbox's watch): it asks the inner one and
    passes on everything else about it; subclasses change what they need."""

    def __init__(self, source: Source) -> None:
        self.source = source

    @property
    def role_arn(self) -> str:
        return self.source.role_arn

    @property
    def cache_key(self) -> Hashable:
        return self.source.cache_key

    @property
    def description(self) -> str:
        return self.source.description

    @property
    def upstream(self) -> str | None:
        return self.source.upstream

    async def fetch(self, upstream: Credentials | None = None) -> Credentials:
        return await (self.source.fetch(upstream) if upstream is not None else self.source.fetch())
