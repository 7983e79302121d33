"""What the daemon answers on its control socket: each role's status (`imds-proxy roles`), and
MFA codes delivered to the roles waiting for them (`imds-proxy mfa`)."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping
from typing import Any

from imds_proxy.config import Config
from imds_proxy.engine.credentials import Clock, wire_time
from imds_proxy.engine.mfa import MfaSession
from imds_proxy.engine.refresh import CredentialEngine
from imds_proxy.errors import SourceError

log = logging.getLogger("imds_proxy.control")  # the control socket's logger, as the server's


class Controller:
    """What the daemon answers on the control socket: role status, and MFA codes."""

    def __init__(
        self, config: Config, engine: CredentialEngine, mfa: Mapping[str, MfaSession], clock: Clock
    ) -> None:
        self._config = config
        self._engine = engine
        self._mfa = mfa
        self._clock = clock

    async def handle(self, request: dict[str, Any]) -> dict[str, Any]:
        op = request.get("op")
        if op == "roles":
            return {"ok": True, "roles": self.roles()}
        if op == "mfa-role":
            return self._mfa_role(request.get("role"))
        if op == "mfa":
            return await self._mfa_code(request.get("role"), request.get("code"))
        return {"ok": False, "error": f"unknown op {op!r}: use roles, mfa-role or mfa"}

    def roles(self) -> list[dict[str, Any]]:
        now = self._clock()
        out = []
        for name, spec in self._config.roles.items():
            status = self._engine.status(name)
            mfa = self._mfa.get(name)
            out.append(
                {
                    "name": name,
                    "role_arn": spec.role_arn,
                    "source": status.source_description,
                    "key": status.key_suffix,
                    "expires": wire_time(status.expiration) if status.expiration else None,
                    "remaining_seconds": int((status.expiration - now).total_seconds())
                    if status.expiration
                    else None,
                    "state": _state(status.waiting, status.failures),
                    "fetches": status.fetches,
                    "failures": status.failures,
                    "last_error": status.last_error,
                    "retry_at": wire_time(status.retry_at) if status.retry_at else None,
                    "mfa": mfa.snapshot(now) if mfa else None,
                }
            )
        return out

    def _pick(self, role: object) -> tuple[str, MfaSession] | str:
        """The MFA role a request means, or why there is none."""
        if role is None:
            waiting = [n for n in self._mfa if self._engine.waiting(n)]
            candidates = waiting if len(waiting) == 1 else list(self._mfa)
            if len(candidates) != 1:
                names = ", ".join(self._mfa) or "none"
                return f"roles using MFA: {names}; pass --role NAME" if self._mfa else "no role uses MFA"
            role = candidates[0]
        if not isinstance(role, str) or role not in self._config.roles:
            return f"no role {role!r}; configured: {', '.join(self._config.roles)}"
        if role not in self._mfa:
            return f"role {role} does not use MFA (no mfa_serial)"
        return role, self._mfa[role]

    def _mfa_role(self, role: object) -> dict[str, Any]:
        picked = self._pick(role)
        if isinstance(picked, str):
            return {"ok": False, "error": picked}
        name, session = picked
        return {"ok": True, "role": name, "serial": session.serial, "roles": session.roles}

    async def _mfa_code(self, role: object, code: object) -> dict[str, Any]:
        picked = self._pick(role)
        if isinstance(picked, str):
            return {"ok": False, "error": picked}
        name, session = picked
        try:
            session.offer(code if isinstance(code, str) else "")
        except ValueError as e:
            return {"ok": False, "error": str(e)}
        log.info("MFA code received for role %s (%s)", name, session.serial)
        try:
            creds = await self._engine.wake(name)
        except SourceError as e:
            return {"ok": False, "error": str(e)}
        finally:
            session.take_code()  # unused codes do not linger (they expire within a minute anyway)
        # Roles sharing the session, or chained off an MFA role, can go on without a code now.
        others = [n for n in self._engine.role_names if n != name and self._engine.waiting(n)]
        results = await asyncio.gather(*(self._engine.wake(n) for n in others), return_exceptions=True)
        lines = [f"role {name}: credentials valid until {wire_time(creds.expiration)}"]
        if session.expires is not None:
            lines.append(f"MFA session for {session.serial} valid until {wire_time(session.expires)}")
        for other, result in zip(others, results, strict=True):
            lines.append(
                f"role {other}: "
                + (
                    f"still failing: {result}"
                    if isinstance(result, BaseException)
                    else f"credentials valid until {wire_time(result.expiration)}"
                )
            )
        return {"ok": True, "message": "\n".join(lines)}


def _state(waiting: bool, failures: int) -> str:
    if waiting:
        return "waiting for MFA"
    return "failing" if failures else "ok"
