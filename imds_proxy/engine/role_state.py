"""One role's state inside the engine (its source, failures, backoff, the fetch in flight), and
the snapshot of it that logs, health and `imds-proxy roles` show."""

from __future__ import annotations

import asyncio
from collections.abc import Hashable
from dataclasses import dataclass, field
from datetime import datetime

from imds_proxy.engine.credentials import Served, Source
from imds_proxy.errors import SourceError


@dataclass
class RoleStatus:
    """A snapshot of one role's state, for logs, health and `imds-proxy roles`."""

    name: str
    role_arn: str
    #: The source's own words for whose keys call STS (`imds-proxy roles` SOURCE).
    source_description: str
    expiration: datetime | None
    failures: int
    last_error: str | None
    retry_at: datetime | None
    fetches: int
    #: The source needs someone's input (an MFA code) and is not retried until it arrives.
    waiting: bool = False
    key_suffix: str | None = None


@dataclass(eq=False)
class RoleState:
    """What the engine knows of one role besides its cached credentials."""

    name: str
    source: Source
    failures: int = 0
    last_error: SourceError | None = None
    retry_at: datetime | None = None
    fetches: int = 0
    #: When the last fetch started (by the injected clock): paces request-driven retries.
    attempted_at: datetime | None = None
    waiting: bool = False
    #: The kind of the last unexpected exception, logged with its traceback once per kind.
    last_bug: type[BaseException] | None = None
    flight: asyncio.Task[Served] | None = field(default=None, repr=False)
    #: The cached set with the time until which a request may have it as it is (no refresh due,
    #: not near expiry): the hot path, so a request need not hash the source's cache key.
    hot: tuple[Served, datetime] | None = field(default=None, repr=False)

    @property
    def key(self) -> Hashable:
        return self.source.cache_key


