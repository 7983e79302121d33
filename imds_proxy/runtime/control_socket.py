"""The control socket: a Unix socket in a private directory, for `imds-proxy mfa` (hand a
code to the running daemon) and `imds-proxy roles` (what each role is doing). Both sides of the
wire: the daemon's server and the commands' client. What the daemon answers is `controller`'s.

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
from collections.abc import Awaitable, Callable, Mapping
from pathlib import Path
from types import TracebackType
from typing import Any

from imds_proxy.errors import ControlError

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
        return self

    @property
    def listening(self) -> bool:
        """Whether this daemon holds the socket (logged by the daemon once it serves)."""
        return self._server is not None

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
