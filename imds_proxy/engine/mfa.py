"""MFA sessions without blocking: opened with codes that arrive out of band (`imds-proxy mfa`
over the control socket, or an `mfa_process`), and the warnings due before and when one ends
(runtime's MFA watcher raises them). Codes are never logged; time comes from the caller."""

from __future__ import annotations

import logging
import re
import shlex
import subprocess
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from imds_proxy.engine.credentials import wire_time
from imds_proxy.errors import SourceError

log = logging.getLogger("imds_proxy.mfa")

CODE_RE = re.compile(r"\d{6}")
#: A password manager may ask its own user first (unlock, touch a key): give it time.
PROCESS_TIMEOUT = 120.0
#: A session this close to its end is not used for another AssumeRole (clock skew with AWS).
SESSION_MARGIN = timedelta(minutes=2)


@dataclass(frozen=True)
class SessionKeys:
    """GetSessionToken's credentials: an MFA-backed session of the source identity."""

    access_key_id: str
    secret_access_key: str = field(repr=False)
    session_token: str = field(repr=False)
    expiration: datetime


def _left(until: datetime, now: datetime) -> str:
    seconds = max(0, int((until - now).total_seconds()))
    hours, rest = divmod(seconds, 3600)
    return f"{hours}h{rest // 60:02d}m" if hours else f"{rest // 60}m{rest % 60:02d}s"


class MfaSession:
    """One MFA device's session, shared by the roles that name the same device and source.

    Its state moves only when told: `offer` (a code arrived), `opened` (STS accepted one),
    and `due` (the watcher asks, with the time, whether a warning is due)."""

    def __init__(self, serial: str, duration: int, process: str | None, warn_ahead: timedelta) -> None:
        self.serial = serial
        self.duration = duration
        self.process = tuple(shlex.split(process)) if process else None
        self.warn_ahead = warn_ahead
        self.roles: list[str] = []
        self.keys: SessionKeys | None = None
        #: When MFA-backed access ends: the session's expiry, or (MFA given straight to
        #: AssumeRole) the role credentials' expiry.
        self.expires: datetime | None = None
        #: The "metric": how many warnings this session raised (shown by `imds-proxy roles`).
        self.warnings = 0
        self.codes_used = 0
        self._code: str | None = None
        self._warned: datetime | None = None
        self._ended: datetime | None = None
        self._lock = threading.Lock()  # codes pass from the event loop to worker threads
        #: Single flight per session, not per role: roles refreshing at once take turns, so
        #: one runs `mfa_process` and GetSessionToken and the others sign with its session.
        self.flight = threading.Lock()
        self._on_open: list[Callable[[], object]] = []

    @property
    def first_role(self) -> str:
        return self.roles[0] if self.roles else "NAME"

    def command_hint(self) -> str:
        return f"run `imds-proxy mfa --role {self.first_role}`"

    def offer(self, code: str) -> None:
        """A code for the next STS call. Raises ValueError unless it is six digits."""
        code = code.strip()
        if not CODE_RE.fullmatch(code):
            raise ValueError("an MFA code is six digits")
        with self._lock:
            self._code = code

    def take_code(self) -> str | None:
        """The pending code, once (codes are single use)."""
        with self._lock:
            code, self._code = self._code, None
        return code

    def obtain_code(self) -> str | None:
        """A pending code, else one from `mfa_process`, else None. Blocking: call in a thread."""
        code = self.take_code()
        if code is None and self.process is not None:
            code = run_process(self.process)
        return code

    def usable_keys(self, now: datetime) -> SessionKeys | None:
        if self.keys is not None and self.keys.expiration - now > SESSION_MARGIN:
            return self.keys
        return None

    def opened(self, keys: SessionKeys | None, expires: datetime) -> None:
        """STS accepted a code: MFA-backed access lasts until `expires`. Tells every
        subscriber (from whichever thread called STS)."""
        self.keys = keys
        self.expires = expires
        self.codes_used += 1
        for callback in self._on_open:
            callback()

    def subscribe(self, callback: Callable[[], object]) -> None:
        """Call `callback` whenever a session opens (roles waiting on it can go on). It runs
        in the thread that called STS: it must be thread-safe."""
        self._on_open.append(callback)

    def forget(self) -> None:
        """STS called the session's keys invalid: the next call opens a new session."""
        self.keys = None

    def due(self, now: datetime) -> str | None:
        """The warning due at `now`, once per session end: first `warn_ahead` before it,
        then when it has passed. Sessions renewed by `mfa_process` need no human."""
        if self.expires is None or self.process is not None:
            return None
        roles = ", ".join(self.roles)
        if now >= self.expires:
            if self._ended == self.expires:
                return None
            self._ended = self._warned = self.expires
            self.warnings += 1
            return (
                f"MFA session for {self.serial} ended at {wire_time(self.expires)}: roles {roles} serve "
                f"their current credentials until they expire, then refuse; {self.command_hint()}"
            )
        if now >= self.expires - self.warn_ahead and self._warned != self.expires:
            self._warned = self.expires
            self.warnings += 1
            return (
                f"MFA session for {self.serial} ends in {_left(self.expires, now)} "
                f"(at {wire_time(self.expires)}): {self.command_hint()} to renew it; "
                f"roles {roles} keep being served meanwhile"
            )
        return None

    def next_due(self) -> datetime | None:
        """When `due` may next have something to say (None: not until a new session)."""
        if self.expires is None or self.process is not None:
            return None
        if self._warned != self.expires:
            return self.expires - self.warn_ahead
        if self._ended != self.expires:
            return self.expires
        return None

    def snapshot(self, now: datetime) -> dict[str, Any]:
        """For `imds-proxy roles`: no keys, no codes."""
        return {
            "serial": self.serial,
            "expires": wire_time(self.expires) if self.expires else None,
            "remaining_seconds": int((self.expires - now).total_seconds()) if self.expires else None,
            "renewed_by": "mfa_process" if self.process else "imds-proxy mfa",
            "warnings": self.warnings,
            "codes_used": self.codes_used,
        }


def run_process(argv: Sequence[str], timeout: float = PROCESS_TIMEOUT) -> str:
    """Run `mfa_process` and return the six-digit code it printed (its last line). Its
    output never reaches a log or an error: it may hold more than a code."""
    name = argv[0]
    try:
        done = subprocess.run(
            list(argv), capture_output=True, text=True, timeout=timeout, stdin=subprocess.DEVNULL, check=False
        )
    except FileNotFoundError:
        raise SourceError(f"mfa_process {name!r} was not found; check the command") from None
    except subprocess.TimeoutExpired:
        raise SourceError(f"mfa_process {name!r} printed no code within {timeout:.0f} s") from None
    except OSError as e:
        raise SourceError(f"mfa_process {name!r} could not run ({e.strerror})") from None
    if done.returncode != 0:
        raise SourceError(f"mfa_process {name!r} exited with status {done.returncode}")
    lines = [line.strip() for line in done.stdout.splitlines() if line.strip()]
    if not lines or not CODE_RE.fullmatch(lines[-1]):
        raise SourceError(f"mfa_process {name!r} did not print a six-digit code on its last line")
    return lines[-1]
