"""Running the imds-proxy command as a real process, isolated from the user's AWS set-up."""

from __future__ import annotations

import json
import os
import queue
import re
import signal
import subprocess
import sys
import threading
import time
import urllib.request
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from conftest import TOKEN, TTL
from fakes import ISSUED


def isolated_vars(home: Path) -> dict[str, str]:
    """What every isolated client gets: an empty HOME, config files that do not exist, and
    no proxy for loopback."""
    return {
        "HOME": str(home),
        "AWS_CONFIG_FILE": str(home / "no-such-dir" / "config"),
        "AWS_SHARED_CREDENTIALS_FILE": str(home / "no-such-dir" / "credentials"),
        # The daemon's control socket goes under here: test daemons never meet a real one.
        "XDG_RUNTIME_DIR": str(home / "run"),
        # Test daemons' admin endpoints on a port the kernel picks: the default 9169 is one per
        # machine, and daemons of tests (or of other checkouts) running at once would meet there.
        "IMDS_PROXY_ADMIN_LISTEN": "127.0.0.1:0",
        "NO_PROXY": "127.0.0.1,localhost,::1",
        "no_proxy": "127.0.0.1,localhost,::1",
    }


def dropped(name: str) -> bool:
    """Every AWS_* variable (keys, profiles, container URIs, endpoints, IMDS switches) and
    our own IMDS_PROXY_* could give a process something other than what a test sets."""
    return name.startswith(("AWS_", "IMDS_PROXY_"))


def isolated_env(home: Path, extra: Mapping[str, str] | None = None) -> dict[str, str]:
    """The current environment without AWS credentials, profiles or config files."""
    env = {k: v for k, v in os.environ.items() if not dropped(k)}
    env.update(isolated_vars(home))
    env.update(extra or {})
    return env


def run(args: list[str], env: Mapping[str, str], timeout: float = 60) -> subprocess.CompletedProcess[str]:
    """Run `imds-proxy ARGS` to completion."""
    return subprocess.run(
        [sys.executable, "-m", "imds_proxy", *args],
        env=dict(env),
        capture_output=True,
        text=True,
        timeout=timeout,
        stdin=subprocess.DEVNULL,
    )


def imds_credentials(base: str, role: str | None = None) -> dict[str, Any]:
    """A role's credentials document over the raw IMDSv2 protocol, as a process outside the test
    asks for it: `role`'s, or the one the role listing names. `base` ends with a slash."""
    put = urllib.request.Request(f"{base}latest/api/token", method="PUT", headers={TTL: "60"})
    with urllib.request.urlopen(put, timeout=10) as r:
        token = r.read().decode()
    ISSUED.add(token)
    creds = f"{base}latest/meta-data/iam/security-credentials/"
    if role is None:
        with urllib.request.urlopen(urllib.request.Request(creds, headers={TOKEN: token}), timeout=10) as r:
            role = r.read().decode()
    get = urllib.request.Request(creds + role, headers={TOKEN: token})
    with urllib.request.urlopen(get, timeout=10) as r:
        doc: dict[str, Any] = json.loads(r.read())
    return doc


class Daemon:
    """A running `imds-proxy` process whose output lines are collected as they come."""

    def __init__(self, proc: subprocess.Popen[str]) -> None:
        self.proc = proc
        self.stdout: list[str] = []
        self.stderr: list[str] = []
        self._lines: queue.Queue[tuple[str, str]] = queue.Queue()
        for name, stream in (("stdout", proc.stdout), ("stderr", proc.stderr)):
            threading.Thread(target=self._pump, args=(name, stream), daemon=True).start()

    def _pump(self, name: str, stream: object) -> None:
        for line in stream:  # type: ignore[attr-defined]
            getattr(self, name).append(line.rstrip("\n"))
            self._lines.put((name, line))

    def wait_for(self, pattern: str, timeout: float = 30) -> re.Match[str]:
        """The first output line (either stream) matching pattern; fails if the process ends."""
        deadline = time.monotonic() + timeout
        rx = re.compile(pattern)
        for line in self.stdout + self.stderr:
            if m := rx.search(line):
                return m
        while time.monotonic() < deadline:
            try:
                _, line = self._lines.get(timeout=0.1)
            except queue.Empty:
                if self.proc.poll() is not None:
                    break
                continue
            if m := rx.search(line):
                return m
        raise AssertionError(f"no line matching {pattern!r}; stderr:\n" + "\n".join(self.stderr[-20:]))

    def wait_for_all(self, pattern: str, count: int, timeout: float = 30) -> list[str]:
        """The first `count` output lines matching pattern, waiting for them as they come."""
        rx = re.compile(pattern)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            found = [line for line in self.stdout + self.stderr if rx.search(line)]
            if len(found) >= count or self.proc.poll() is not None:
                break
            time.sleep(0.05)
        assert len(found) >= count, f"{len(found)} lines matching {pattern!r}, not {count}"
        return found[:count]

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 15) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
        return self.proc.wait(timeout=timeout)


@contextmanager
def daemon(args: list[str], env: Mapping[str, str], prefix: Sequence[str] = ()) -> Iterator[Daemon]:
    """`imds-proxy ARGS` running, under `prefix` (e.g. prlimit) if given; killed at the end."""
    proc = subprocess.Popen(
        [*prefix, sys.executable, "-m", "imds_proxy", *args],
        env=dict(env),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        stdin=subprocess.DEVNULL,
        text=True,
    )
    d = Daemon(proc)
    try:
        yield d
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(timeout=10)
