"""Socket activation: the listening sockets systemd passes (LISTEN_PID, LISTEN_FDS,
LISTEN_FDNAMES; sd_listen_fds(3)), as listeners that bind nothing themselves."""

from __future__ import annotations

import os
import socket
from collections.abc import MutableMapping

from imds_proxy.config.listeners import Listener
from imds_proxy.errors import ListenError

#: The first inherited descriptor (SD_LISTEN_FDS_START).
FIRST_FD = 3
_VARS = ("LISTEN_PID", "LISTEN_FDS", "LISTEN_FDNAMES")


def take(env: MutableMapping[str, str], pid: int | None = None) -> tuple[Listener, ...]:
    """The inherited sockets meant for this process, as listeners; the LISTEN_* variables are
    removed from `env` so that no child (an MFA or notify command) believes they are its own."""
    pid = os.getpid() if pid is None else pid
    raw_pid, raw_count = env.get("LISTEN_PID"), env.get("LISTEN_FDS")
    names = env.get("LISTEN_FDNAMES", "").split(":")
    for name in _VARS:
        env.pop(name, None)
    if raw_pid is None or raw_count is None:
        return ()
    try:
        if int(raw_pid) != pid:
            return ()  # meant for another process (e.g. our parent)
        count = int(raw_count)
    except ValueError:
        raise ListenError(
            f"LISTEN_PID={raw_pid!r} LISTEN_FDS={raw_count!r} are not numbers; start the daemon from "
            "systemd or systemd-socket-activate, or unset them"
        ) from None
    return tuple(
        _listener(fd, names[i] if i < len(names) and names[i] else None)
        for i, fd in enumerate(range(FIRST_FD, FIRST_FD + count))
    )


def _listener(fd: int, name: str | None) -> Listener:
    """The listener on descriptor `fd`, at the address it is bound to."""
    try:
        sock = socket.socket(fileno=fd)
    except OSError as e:
        raise ListenError(f"inherited descriptor {fd} is not a socket ({e.strerror})") from None
    try:
        if sock.type != socket.SOCK_STREAM or sock.family not in (socket.AF_INET, socket.AF_INET6):
            raise ListenError(
                f"inherited socket {name or fd} is not a TCP socket; use ListenStream=ADDRESS:PORT"
            )
        host, port = sock.getsockname()[:2]
    finally:
        sock.detach()  # the descriptor stays open: the daemon serves on it
    return Listener(str(host), int(port), fd=fd, fd_name=name)
