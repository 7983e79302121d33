"""Fakes for tests: a clock that tests move and a credential source that counts its calls."""

from __future__ import annotations

import asyncio
import secrets
from collections.abc import Hashable
from datetime import UTC, datetime, timedelta

from imds_proxy.credentials import Credentials
from imds_proxy.errors import SourceError

#: Every secret and session token any test has been handed; the log check looks for them.
ISSUED: set[str] = set()

ROLE_ARN = "arn:aws:iam::123456789012:role/test-role"


def remember(doc: dict[str, str]) -> dict[str, str]:
    """Register the secrets of a credential document a test received over the wire."""
    for key in ("SecretAccessKey", "Token"):
        if doc.get(key):
            ISSUED.add(doc[key])
    return doc


class FakeClock:
    """A wall clock that only moves when told (also usable as the token clock)."""

    def __init__(self, start: datetime | None = None) -> None:
        self.now = start or datetime(2026, 1, 1, 12, 0, tzinfo=UTC)

    def __call__(self) -> datetime:
        return self.now

    def seconds(self) -> float:
        return self.now.timestamp()

    def advance(self, **delta: float) -> None:
        self.now += timedelta(**delta)


class FakeSource:
    """Issues fresh credentials valid for `lifetime` from the clock's now; can be told to fail.
    `gate` (an Event) lets a test hold fetches open to pile up concurrent callers."""

    def __init__(
        self,
        clock: FakeClock,
        lifetime: timedelta = timedelta(hours=1),
        role_arn: str = ROLE_ARN,
        key_prefix: str = "ASIAFAKE",
    ) -> None:
        self.clock = clock
        self.lifetime = lifetime
        self.calls = 0
        self.fail_with: SourceError | None = None
        self.gate: asyncio.Event | None = None
        self._role_arn = role_arn
        self._key_prefix = key_prefix

    @property
    def role_arn(self) -> str:
        return self._role_arn

    @property
    def cache_key(self) -> Hashable:
        return (self._role_arn, id(self))

    async def fetch(self) -> Credentials:
        self.calls += 1
        if self.gate is not None:
            await self.gate.wait()
        if self.fail_with is not None:
            raise self.fail_with
        secret, token = secrets.token_urlsafe(30), secrets.token_urlsafe(120)
        ISSUED.update((secret, token))
        now = self.clock()
        return Credentials(
            access_key_id=f"{self._key_prefix}{self.calls:012d}",
            secret_access_key=secret,
            session_token=token,
            expiration=now + self.lifetime,
            last_updated=now,
            role_arn=self._role_arn,
            account_id="123456789012",
        )
