"""The control socket: a Unix socket in a private directory, for `imds-proxy mfa` (hand a
code to the running daemon) and `imds-proxy roles` (what each role is doing).

One JSON object per line each way, one request per connection. Only the daemon's own user
(or root) gets an answer; nothing sent back holds a secret (key ids as their last 4 only).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import socket
import stat
import struct
import sys
from collections.abc import Awaitable, Callable, Mapping
from pathlib import Path
from types import TracebackType
from typing import Any

from imds_proxy.config import Config
from imds_proxy.credentials import Clock, wire_time
from imds_proxy.errors import ControlError, SourceError
from imds_proxy.mfa import MfaSession
from imds_proxy.refresh import CredentialEngine

log = logging.getLogger("imds_proxy.control")

#: No legitimate request comes near this; a longer line is refused, not buffered.
MAX_REQUEST = 4096
#: A client that connects and says nothing is dropped after this long.
READ_TIMEOUT = 10.0
#: `imds-proxy mfa` waits for STS (GetSessionToken, then AssumeRole, with botocore's retries).
CLIENT_TIMEOUT = 90.0

Handler = Callable[[dict[str, Any]], Awaitable[dict[str, Any]]]


def default_path(env: Mapping[str, str] | None = None) -> Path:
    """`$XDG_RUNTIME_DIR/imds-proxy/control.sock`, else `/tmp/imds-proxy-UID/control.sock`."""
    env = os.environ if env is None else env
    runtime = env.get("XDG_RUNTIME_DIR")
    base = Path(runtime) / "imds-proxy" if runtime else Path(f"/tmp/imds-proxy-{os.getuid()}")
    return base / "control.sock"


def _private_dir(directory: Path) -> None:
    """Create the socket's directory 0700, or check that an existing one is ours and private:
    in a shared /tmp another user could otherwise pre-create it and read or plant sockets."""
    try:
        directory.mkdir(mode=0o700, parents=True, exist_ok=True)
        info = directory.lstat()
    except OSError as e:
        raise ControlError(
            f"cannot create the control socket directory {directory} ({e.strerror}); set control_socket"
        ) from None
    if not stat.S_ISDIR(info.st_mode) or info.st_uid != os.getuid() or info.st_mode & 0o077:
        raise ControlError(
            f"{directory} must be a directory owned by this user with mode 0700 "
            "(it holds the control socket); fix it or set control_socket"
        )


def _peer_uid(sock: socket.socket) -> int | None:
    """The connecting process's uid (Linux SO_PEERCRED); None where the platform lacks it."""
    if not hasattr(socket, "SO_PEERCRED"):
        return None
    creds = sock.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, struct.calcsize("3i"))
    return int(struct.unpack("3i", creds)[1])


class ControlServer:
    """The daemon's side: an async context manager that serves `handler` on the socket."""

    def __init__(self, path: Path, handler: Handler, *, required: bool = True) -> None:
        self.path = path
        self._handler = handler
        self._server: asyncio.AbstractServer | None = None
        #: Without MFA roles or an explicit path, a daemon that cannot have the socket (a second
        #: daemon, say a sandbox next to a serve; a read-only /tmp) runs without one rather
        #: than not at all.
        self._required = required

    async def __aenter__(self) -> ControlServer:
        try:
            return await self._start()
        except ControlError as e:
            if self._required:
                raise
            # No MFA role needs it and no path was asked for: serving matters more (a
            # container with a read-only /tmp, a shared /tmp with someone else's directory).
            log.warning(
                "%s; this imds-proxy runs without a control socket (`imds-proxy roles` will not see it)", e
            )
            return self

    async def _start(self) -> ControlServer:
        _private_dir(self.path.parent)
        if self.path.exists() or self.path.is_symlink():
            if _answers(self.path):
                if not self._required:
                    log.warning(
                        "another imds-proxy holds the control socket %s: this one runs without "
                        "(`imds-proxy roles` will not see it; give it --control-socket PATH)",
                        self.path,
                    )
                    return self
                raise ControlError(
                    f"another imds-proxy is running with control socket {self.path}; "
                    "give this one its own (--control-socket PATH or IMDS_PROXY_CONTROL_SOCKET)"
                )
            self.path.unlink()  # left behind by a daemon that was killed
        try:
            self._server = await asyncio.start_unix_server(
                self._serve, path=str(self.path), limit=MAX_REQUEST
            )
        except OSError as e:
            raise ControlError(f"cannot create the control socket {self.path} ({e.strerror})") from None
        # The directory is 0700 already, so no one else could reach it in between.
        os.chmod(self.path, 0o600)
        log.info("control socket %s", self.path)
        return self

    async def __aexit__(
        self, kind: type[BaseException] | None, error: BaseException | None, tb: TracebackType | None
    ) -> None:
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
            with contextlib.suppress(FileNotFoundError):
                self.path.unlink()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            reply = await self._answer(reader, writer)
            writer.write(json.dumps(reply).encode() + b"\n")
            await writer.drain()
        except (ConnectionError, OSError):
            pass  # the client went away; nothing to tell it
        except Exception:  # a bad request must never take the daemon down
            log.exception("control request failed")
        finally:
            writer.close()
            with contextlib.suppress(ConnectionError, OSError):
                await writer.wait_closed()

    async def _answer(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> dict[str, Any]:
        sock = writer.get_extra_info("socket")
        uid = _peer_uid(sock) if sock is not None else None
        if uid is not None and uid not in (0, os.getuid()):
            # Defence in depth behind the 0600 mode: another local user must not feed codes.
            log.warning("control socket: refused a client running as uid %d", uid)
            return {"ok": False, "error": "refused: the daemon runs as another user"}
        try:
            line = await asyncio.wait_for(reader.readline(), READ_TIMEOUT)
        except TimeoutError:
            return {"ok": False, "error": "no request within 10 s"}
        except (ValueError, asyncio.LimitOverrunError):
            return {"ok": False, "error": f"request longer than {MAX_REQUEST} bytes"}
        try:
            request = json.loads(line)
        except ValueError:
            return {"ok": False, "error": "the request is not JSON"}
        if not isinstance(request, dict):
            return {"ok": False, "error": "the request is not a JSON object"}
        return await self._handler(request)


def _answers(path: Path) -> bool:
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
        s.settimeout(2)
        try:
            s.connect(str(path))
        except OSError:
            return False
    return True


def request(path: Path, message: Mapping[str, Any], timeout: float = CLIENT_TIMEOUT) -> dict[str, Any]:
    """The client's side: send one request, return the daemon's reply."""
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
        s.settimeout(timeout)
        try:
            s.connect(str(path))
        except (FileNotFoundError, ConnectionRefusedError):
            raise ControlError(
                f"no imds-proxy daemon is listening on {path}; start `imds-proxy serve` "
                "(or pass the --control-socket it uses)"
            ) from None
        except PermissionError:
            raise ControlError(f"no permission to use {path}: run as the daemon's user") from None
        try:
            s.sendall(json.dumps(message).encode() + b"\n")
            data = b""
            while not data.endswith(b"\n"):
                chunk = s.recv(65536)
                if not chunk:
                    break
                data += chunk
        except TimeoutError:
            raise ControlError(f"the daemon did not answer within {timeout:.0f} s") from None
    try:
        reply = json.loads(data)
    except ValueError:
        raise ControlError("the daemon's answer was not understood; is it the same version?") from None
    if not isinstance(reply, dict):
        raise ControlError("the daemon's answer was not understood; is it the same version?")
    return reply


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
                    "source": spec.source_description,
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


def _ago(seconds: int | None) -> str:
    if seconds is None:
        return "-"
    sign, seconds = ("-" if seconds < 0 else ""), abs(seconds)
    hours, rest = divmod(seconds, 3600)
    return f"{sign}{hours}h{rest // 60:02d}m" if hours else f"{sign}{rest // 60}m{rest % 60:02d}s"


def render_roles(roles: list[dict[str, Any]]) -> str:
    """`imds-proxy roles` for a terminal: one line per role, then its error if any."""
    header = ("ROLE", "STATE", "CREDENTIALS", "MFA SESSION", "SOURCE")
    rows = [header]
    for r in roles:
        creds = f"{_ago(r['remaining_seconds'])} left ({r['key']})" if r["key"] else "none"
        mfa = r["mfa"]
        if mfa:
            left = "not opened"
            if mfa["remaining_seconds"] is not None:
                left = f"{_ago(mfa['remaining_seconds'])} left"
            mfa_text = f"{left}, {mfa['warnings']} warnings"
        else:
            mfa_text = "-"
        rows.append((r["name"], r["state"], creds, mfa_text, r["source"]))
    widths = [max(len(row[i]) for row in rows) for i in range(len(header) - 1)]
    lines = []
    for i, row in enumerate(rows):
        lines.append("  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=False)) + "  " + row[-1])
        if i and roles[i - 1]["last_error"]:
            lines.append(f"  last error ({roles[i - 1]['failures']} failures): {roles[i - 1]['last_error']}")
    return "\n".join(line.rstrip() for line in lines)


def read_code(prompt: str) -> str:
    """The code from the terminal (or one line of piped input)."""
    if sys.stdin.isatty():
        return input(prompt)
    print(prompt, end="", file=sys.stderr, flush=True)
    line = sys.stdin.readline()
    print(file=sys.stderr)  # the piped code is not echoed: end the prompt's line
    return line
