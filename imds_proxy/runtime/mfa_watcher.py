"""The MFA watcher: raises each MFA session's warnings on time (log line, counter, optional
notify command) while the daemon runs."""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
from collections.abc import Awaitable, Callable, Iterable, Sequence
from datetime import timedelta
from types import TracebackType

from imds_proxy.engine.credentials import Clock
from imds_proxy.engine.mfa import MfaSession
from imds_proxy.engine.refresh import CredentialEngine

log = logging.getLogger("imds_proxy.mfa")

NOTIFY_TIMEOUT = 10.0

Notify = Callable[[str], Awaitable[None]]


def command_notifier(argv: Sequence[str]) -> Notify:
    """Run `notify_command MESSAGE` (e.g. notify-send) without waiting more than a few seconds."""

    async def notify(message: str) -> None:
        try:
            proc = await asyncio.create_subprocess_exec(
                *argv,
                message,
                stdin=asyncio.subprocess.DEVNULL,
                stdout=asyncio.subprocess.DEVNULL,
                stderr=asyncio.subprocess.DEVNULL,
            )
        except OSError as e:
            log.warning("notify_command %r could not run (%s)", argv[0], e.strerror)
            return
        try:
            status = await asyncio.wait_for(proc.wait(), NOTIFY_TIMEOUT)
        except TimeoutError:
            proc.kill()
            await proc.wait()
            log.warning("notify_command %r took over %.0f s; stopped it", argv[0], NOTIFY_TIMEOUT)
            return
        if status != 0:
            log.warning("notify_command %r exited with status %d", argv[0], status)

    return notify


def wake_on_open(sessions: Iterable[MfaSession], engine: CredentialEngine) -> None:
    """When one role opens an MFA session, the roles waiting on that session go on at once.
    `opened` runs in the worker thread that called STS: the engine is told on its own loop."""
    loop = asyncio.get_running_loop()
    for session in sessions:
        session.subscribe(functools.partial(loop.call_soon_threadsafe, engine.resume, tuple(session.roles)))


class MfaWatcher:
    """Raises each session's warnings on time: log line, counter, optional notify command.
    An async context manager that runs in the daemon; tests call `tick` with a fake clock."""

    def __init__(
        self,
        sessions: Sequence[MfaSession],
        clock: Clock,
        notify: Notify | None = None,
        max_sleep: timedelta = timedelta(seconds=60),
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        self._sessions = sessions
        self._clock = clock
        self._notify = notify
        self._max_sleep = max_sleep
        self._sleep = sleep
        self._task: asyncio.Task[None] | None = None

    async def tick(self) -> float:
        """Raise the warnings due now; return seconds until the next may be (at most max_sleep:
        the wall clock jumps when a laptop sleeps)."""
        now = self._clock()
        for session in self._sessions:
            message = session.due(now)
            if message is None:
                continue
            log.warning("%s", message)
            if self._notify is not None:
                await self._notify(message)
        upcoming = [d for s in self._sessions if (d := s.next_due()) is not None]
        until = min([now + self._max_sleep, *upcoming])
        return max(0.0, (until - now).total_seconds())

    async def run(self) -> None:
        while True:
            await self._sleep(max(await self.tick(), 0.05))

    async def __aenter__(self) -> MfaWatcher:
        if self._sessions:
            self._task = asyncio.create_task(self.run(), name="mfa watcher")
        return self

    async def __aexit__(
        self, kind: type[BaseException] | None, error: BaseException | None, tb: TracebackType | None
    ) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
