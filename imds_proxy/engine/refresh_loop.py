"""The engine's timer: which role is due when, the background loop that starts those fetches, and
its lifetime as an async context manager (the daemon's and exec's)."""

from __future__ import annotations

import abc
import asyncio
import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import datetime
from typing import Self

from imds_proxy.engine.credentials import Clock, Credentials, Served
from imds_proxy.engine.policy import RefreshPolicy, refresh_at
from imds_proxy.engine.role_state import RoleState

#: After background fetches finish, the timer looks again this soon (at most one fetch a second
#: even if a source keeps handing out credentials that are already due).
_RECHECK_AFTER_FETCH = 1.0


class RefreshLoop(abc.ABC):
    """The timer half of CredentialEngine, which provides the state and the fetches."""

    _roles: dict[str, RoleState]
    _policy: RefreshPolicy
    _clock: Clock
    _sleep: Callable[[float], Awaitable[None]]

    @abc.abstractmethod
    def _held(self, role: RoleState) -> Credentials | None:
        """The role's valid cached credentials (CredentialEngine's)."""

    @abc.abstractmethod
    def _flight(self, role: RoleState) -> asyncio.Task[Served]:
        """The role's fetch in progress, started if none is (CredentialEngine's)."""

    def due_at(self, name: str) -> datetime | None:
        """When this role next needs a fetch (now, if it has nothing valid; None while it
        waits for input)."""
        role = self._roles[name]
        if role.waiting:
            return None
        now = self._clock()
        creds = self._held(role)
        due = refresh_at(creds, self._policy) if creds is not None else now
        if role.retry_at is not None:
            due = max(due, role.retry_at)
        return due

    async def tick(self) -> float:
        """Start every fetch that is due by the clock; return seconds until the next one is
        due, at most `max_sleep` (the wall clock is re-read then: it jumps after a sleep)."""
        now = self._clock()
        next_due = now + self._policy.max_sleep
        for name, role in self._roles.items():
            due = self.due_at(name)
            if due is None:
                continue
            if due <= now:
                self._flight(role)
            else:
                next_due = min(next_due, due)
        await asyncio.sleep(0)  # let the started fetches begin
        return max(0.0, (next_due - now).total_seconds())

    async def run(self) -> None:
        """The background refresher; runs until cancelled."""
        while True:
            fetches = sum(r.fetches for r in self._roles.values())
            delay = await self.tick()
            if sum(r.fetches for r in self._roles.values()) != fetches:
                # What the started fetches bring (new credentials, or a backoff) decides when the next
                # one is due; tick() could not know it and said max_sleep. Look again shortly after.
                await self.settle()
                delay = min(delay, _RECHECK_AFTER_FETCH)
            await self._sleep(max(delay, 0.05))

    @contextlib.asynccontextmanager
    async def running(self) -> AsyncIterator[Self]:
        """The background refresher, for as long as the block runs (the daemon's, and exec's)."""
        task = asyncio.create_task(self.run(), name="credential refresher")
        try:
            yield self
        finally:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    async def settle(self) -> None:
        """Wait for every fetch in progress (tests, shutdown)."""
        flights = [r.flight for r in self._roles.values() if r.flight and not r.flight.done()]
        await asyncio.gather(*flights, return_exceptions=True)

