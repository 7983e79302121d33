"""Idle connections cannot starve the daemon: under a 1,024-descriptor limit, 3,000 idle
connections leave room for a legitimate client, the log stays quiet, and an idle connection is
closed within the idle timeout."""

from __future__ import annotations

import resource
import select
import shutil
import socket
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from imds_proxy.runtime.connections import ACCEPT_LOG_INTERVAL, IDLE_TIMEOUT, AcceptErrors, connection_cap

from live_daemon import credentials, live_daemon

IDLE = 3000
#: The systemd default soft limit the red team found the daemon running under.
LIMIT = 1024


@pytest.fixture
def many_fds() -> Iterator[None]:
    """This test process opens IDLE sockets of its own."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard != resource.RLIM_INFINITY and hard < IDLE + 200:
        pytest.skip(f"the hard open-file limit ({hard}) is too low to open {IDLE} connections")
    resource.setrlimit(resource.RLIMIT_NOFILE, (max(soft, IDLE + 200), hard))
    yield
    resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))


def open_idle(port: int, count: int, deadline: float) -> list[socket.socket]:
    """`count` connections that never send a byte, each established before this returns
    (bounded in time as well as count)."""
    held = []
    for _ in range(count):
        s = socket.socket()
        s.setblocking(False)
        s.connect_ex(("127.0.0.1", port))
        held.append(s)
    poller = select.poll()  # select() stops at descriptor 1024
    for s in held:
        poller.register(s, select.POLLOUT)
    pending = len(held)
    while pending and time.monotonic() < deadline:
        for fd, _ in poller.poll(500):
            poller.unregister(fd)
            pending -= 1
    assert not pending, f"{pending} connections never got through"
    return held


def test_three_thousand_idle_connections_under_a_1024_fd_limit_leave_room_for_a_client(
    tmp_path: Path, local_aws: Any, many_fds: None
) -> None:
    prlimit = shutil.which("prlimit")
    assert prlimit, "prlimit (util-linux) is needed to run the daemon under a descriptor limit"
    # Soft and hard both 1024: the daemon cannot raise its way out; its own cap must hold.
    with live_daemon(tmp_path, local_aws, prefix=[prlimit, f"--nofile={LIMIT}:{LIMIT}", "--"]) as (d, port):
        before = len(d.stderr)
        held = open_idle(port, IDLE, time.monotonic() + 20)
        try:
            assert len(held) == IDLE
            time.sleep(0.5)  # let the daemon accept what the kernel queued
            started = time.monotonic()
            doc = credentials(port)  # a legitimate PUT + GET on new connections
            took = time.monotonic() - started
            assert doc["Code"] == "Success"
            # Locked out, it timed out (10 s) in the red team's run; without the cap it waits for
            # the idle timeout to free descriptors; with it, a few milliseconds.
            assert took < IDLE_TIMEOUT - 1
        finally:
            for s in held:
                s.close()
        assert d.proc.poll() is None
        d.stop()
    lines = d.stderr[before:]
    noise = [x for x in lines if "served credentials" not in x and "refused" not in x and "DEBUG" not in x]
    assert len(noise) <= 5, "\n".join(noise[:10])


def test_an_idle_connection_is_closed_within_the_idle_timeout(tmp_path: Path, local_aws: Any) -> None:
    with live_daemon(tmp_path, local_aws) as (d, port):
        with socket.create_connection(("127.0.0.1", port), timeout=IDLE_TIMEOUT + 10) as idle:
            idle.sendall(b"GET /latest/meta-data/ HTTP/1.1\r\nHost: 127.0.0.1\r\n")  # never finished
            started = time.monotonic()
            assert idle.recv(100) == b""  # closed by the daemon (a timeout raises instead)
            waited = time.monotonic() - started
        d.stop()
    assert waited < IDLE_TIMEOUT + 3  # the red team's idle connection was still open after 240 s


def test_accept_failures_are_logged_at_most_once_per_interval(caplog: pytest.LogCaptureFixture) -> None:
    now = [0.0]
    handler = AcceptErrors(clock=lambda: now[0])
    failure = {"message": "socket.accept() out of system resource", "exception": OSError(24, "Too many")}
    for tick in range(2500):  # asyncio reports each failed accept: 25 s of a flood
        now[0] = tick * 0.01
        handler(None, failure)  # type: ignore[arg-type]
    lines = [r for r in caplog.records if r.name == "imds_proxy.connections"]
    assert len(lines) == 3 == 1 + int(25 // ACCEPT_LOG_INTERVAL)
    assert "Too many" in lines[0].getMessage()


def test_the_connection_cap_stays_under_the_descriptor_limit() -> None:
    assert connection_cap(1024, 1) < 1024 - 100
    assert connection_cap(1024, 4) * 4 < 1024
    assert connection_cap(65536, 1) == 1024
