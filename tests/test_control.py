"""The control socket: private to the daemon's user, survives any message, delivers MFA codes
to the right role, and tells an operator what every role is doing."""

from __future__ import annotations

import asyncio
import contextlib
import os
import random
import stat
from collections.abc import AsyncIterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from imds_proxy import config
from imds_proxy.aws.sts import AssumeRoleSource
from imds_proxy.cli.control import render_roles
from imds_proxy.engine.mfa import MfaSession
from imds_proxy.engine.policy import RefreshPolicy
from imds_proxy.engine.refresh import CredentialEngine
from imds_proxy.errors import ControlError, CredentialsUnavailable
from imds_proxy.runtime import control_socket
from imds_proxy.runtime.control_socket import ControlServer
from imds_proxy.runtime.controller import Controller

from fakes import ROLE_ARN, FakeClock, FakeSource, FakeSts

SERIAL = "arn:aws:iam::123456789012:mfa/alice"


def make_config() -> config.Config:
    return config.build(
        {
            "roles": {
                "plain": {"role_arn": "arn:aws:iam::123456789012:role/plain"},
                "admin": {"role_arn": "arn:aws:iam::123456789012:role/admin", "mfa_serial": SERIAL},
                "audit": {"role_arn": "arn:aws:iam::123456789012:role/audit", "mfa_serial": SERIAL},
            }
        }
    )


class Daemon:
    """The daemon's control side, in process: engine, MFA session and socket server."""

    def __init__(self, tmp: Path, clock: FakeClock) -> None:
        self.cfg = make_config()
        self.sts = FakeSts(clock)
        self.session = MfaSession(SERIAL, 43200, None, timedelta(minutes=30))
        self.session.roles += ["admin", "audit"]
        sources = {
            name: AssumeRoleSource(
                spec,
                clock,
                lambda _s: self.sts,
                mfa=self.session if spec.mfa_serial else None,
                keyed_client=self.sts.keyed,
            )
            for name, spec in self.cfg.roles.items()
        }
        self.engine = CredentialEngine(sources, RefreshPolicy.of(self.cfg), clock, rng=random.Random(1))
        mfa = {"admin": self.session, "audit": self.session}
        self.controller = Controller(self.cfg, self.engine, mfa, clock)
        self.path = tmp / "run" / "imds-proxy" / "control.sock"
        self.server = ControlServer(self.path, self.controller.handle)

    async def ask(self, message: dict[str, Any]) -> dict[str, Any]:
        return await asyncio.to_thread(control_socket.request, self.path, message, 10)

    async def send_raw(self, data: bytes) -> bytes:
        reader, writer = await asyncio.open_unix_connection(str(self.path))
        writer.write(data)
        await writer.drain()
        writer.write_eof()
        reply = await reader.read()
        writer.close()
        return reply


@pytest.fixture
async def daemon(tmp_path: Path, clock: FakeClock) -> AsyncIterator[Daemon]:
    d = Daemon(tmp_path, clock)
    async with d.server:
        for name in d.engine.role_names:  # what start-up does: plain works, MFA roles wait
            with contextlib.suppress(CredentialsUnavailable):
                await d.engine.get(name)
        yield d


async def test_the_socket_is_private_to_the_user(daemon: Daemon) -> None:
    assert stat.S_IMODE(daemon.path.stat().st_mode) == 0o600
    assert stat.S_IMODE(daemon.path.parent.stat().st_mode) == 0o700


async def test_a_code_reaches_the_role_and_unblocks_the_roles_sharing_the_session(daemon: Daemon) -> None:
    assert daemon.engine.waiting("admin") and daemon.engine.waiting("audit")
    reply = await daemon.ask({"op": "mfa", "role": "admin", "code": "123456"})
    assert reply["ok"], reply
    assert "role admin: credentials valid until" in reply["message"]
    assert "role audit: credentials valid until" in reply["message"]  # same device, one code
    assert [c["TokenCode"] for c in daemon.sts.calls("GetSessionToken")] == ["123456"]
    assert not daemon.engine.waiting("admin") and not daemon.engine.waiting("audit")
    assert daemon.engine.cached("admin") is not None and daemon.engine.cached("audit") is not None


async def test_a_refused_code_is_reported_and_the_role_keeps_waiting(daemon: Daemon) -> None:
    reply = await daemon.ask({"op": "mfa", "role": "admin", "code": "000000"})
    assert not reply["ok"] and "refused the MFA code" in reply["error"]
    assert "000000" not in reply["error"]
    assert daemon.engine.waiting("admin")
    assert daemon.session.take_code() is None  # the refused code does not linger


@pytest.mark.parametrize(
    ("message", "says"),
    [
        ({"op": "mfa", "role": "admin", "code": "12ab56"}, "six digits"),
        ({"op": "mfa", "role": "plain", "code": "123456"}, "does not use MFA"),
        ({"op": "mfa", "role": "ghost", "code": "123456"}, "no role 'ghost'"),
        ({"op": "mfa", "code": "123456"}, "pass --role NAME"),  # two MFA roles wait
        ({"op": "mfa", "role": ["admin"], "code": "123456"}, "no role"),
        ({"op": "shutdown"}, "unknown op"),
    ],
)
async def test_bad_requests_get_an_error_reply(daemon: Daemon, message: dict[str, Any], says: str) -> None:
    reply = await daemon.ask(message)
    assert not reply["ok"] and says in reply["error"]


@pytest.mark.parametrize(
    "data",
    [
        b"not json\n",
        b"[1, 2]\n",
        b"\xff\xfe\n",
        b'{"op": "roles"' + b" " * 10000 + b"}\n",
        b"",  # connects and hangs up
    ],
)
async def test_garbage_never_takes_the_daemon_down(daemon: Daemon, data: bytes) -> None:
    reply = await daemon.send_raw(data)
    assert reply == b"" or b'"ok": false' in reply
    assert (await daemon.ask({"op": "roles"}))["ok"]  # still serving


async def test_roles_shows_each_roles_state_at_a_glance(daemon: Daemon, clock: FakeClock) -> None:
    await daemon.ask({"op": "mfa", "role": "admin", "code": "123456"})
    daemon.sts.fail_assume = RuntimeError("boom")
    clock.advance(minutes=50)
    await daemon.engine.tick()
    await daemon.engine.settle()
    roles = {r["name"]: r for r in (await daemon.ask({"op": "roles"}))["roles"]}
    assert roles["plain"]["state"] == "failing" and "boom" in roles["plain"]["last_error"]
    assert roles["admin"]["remaining_seconds"] == 600 and roles["admin"]["key"].startswith("…")
    assert roles["admin"]["mfa"]["remaining_seconds"] == 12 * 3600 - 3000
    text = render_roles(list(roles.values()))
    lines = text.splitlines()
    assert lines[0].split() == ["ROLE", "STATE", "CREDENTIALS", "MFA", "SESSION", "SOURCE"]
    assert any(line.startswith("admin") and "10m00s left" in line and "11h10m left" in line for line in lines)
    assert any("last error (1 failures)" in line and "boom" in line for line in lines)
    for r in roles.values():  # nothing secret: key ids only as their last four characters
        assert r["key"] is None or len(r["key"]) == 5


async def test_roles_says_where_each_roles_source_keys_come_from(daemon: Daemon) -> None:
    roles = {r["name"]: r for r in (await daemon.ask({"op": "roles"}))["roles"]}
    assert roles["plain"]["source"] == "default credential chain"
    assert roles["admin"]["source"] == f"default credential chain, MFA {SERIAL}"


def test_roles_takes_the_source_from_the_source_not_from_the_config(clock: FakeClock) -> None:
    # As the sandbox does: its client factory signs with a scenario's keys, whatever the role's keys say.
    cfg = config.build({"role_arn": ROLE_ARN})
    [name] = cfg.roles
    engine = CredentialEngine({name: FakeSource(clock)}, RefreshPolicy.of(cfg), clock)
    [role] = Controller(cfg, engine, {}, clock).roles()
    assert role["source"] == "a fake source"


async def test_a_second_daemon_on_the_same_socket_is_refused(daemon: Daemon) -> None:
    with pytest.raises(ControlError, match="another imds-proxy is running"):
        async with ControlServer(daemon.path, daemon.controller.handle):
            pass


async def test_a_second_daemon_that_needs_no_socket_runs_without_one(daemon: Daemon) -> None:
    async with ControlServer(daemon.path, daemon.controller.handle, required=False):
        assert daemon.path.exists()
    assert daemon.path.exists()  # still the first daemon's: the second neither took nor removed it
    assert (await daemon.ask({"op": "roles"}))["ok"]


async def test_a_daemon_that_needs_no_socket_runs_without_one_it_cannot_create(
    tmp_path: Path, daemon: Daemon, caplog: pytest.LogCaptureFixture
) -> None:
    """A read-only /tmp (Kubernetes' readOnlyRootFilesystem) must not stop a daemon that has
    no MFA role and was given no socket path; one that needs the socket still refuses."""
    blocked = tmp_path / "not-a-directory"
    blocked.write_text("")
    path = blocked / "imds-proxy" / "control.sock"
    async with ControlServer(path, daemon.controller.handle, required=False):
        pass
    assert "runs without a control socket" in caplog.text
    with pytest.raises(ControlError, match="cannot create the control socket directory"):
        async with ControlServer(path, daemon.controller.handle):
            pass


async def test_a_stale_socket_left_by_a_killed_daemon_is_replaced(tmp_path: Path, clock: FakeClock) -> None:
    import socket

    d = Daemon(tmp_path, clock)
    d.path.parent.mkdir(parents=True, mode=0o700)
    stale = socket.socket(socket.AF_UNIX)
    stale.bind(str(d.path))
    stale.close()  # the file stays, nobody listens
    async with d.server:
        assert (await d.ask({"op": "roles"}))["ok"]
    assert not d.path.exists()  # and it cleans up after itself


async def test_a_directory_others_can_enter_is_refused(tmp_path: Path) -> None:
    shared = tmp_path / "shared"
    shared.mkdir()
    os.chmod(shared, 0o777)

    async def nothing(_request: dict[str, Any]) -> dict[str, Any]:
        return {}

    with pytest.raises(ControlError, match="mode 0700"):
        async with ControlServer(shared / "control.sock", nothing):
            pass


def test_no_daemon_is_a_one_line_error(tmp_path: Path) -> None:
    with pytest.raises(ControlError, match="no imds-proxy daemon is listening") as raised:
        control_socket.request(tmp_path / "nothing.sock", {"op": "roles"})
    assert "\n" not in str(raised.value)


def test_default_path_is_private_per_user() -> None:
    assert control_socket.default_path({"XDG_RUNTIME_DIR": "/run/user/1000"}) == Path(
        "/run/user/1000/imds-proxy/control.sock"
    )
    assert control_socket.default_path({}) == Path(f"/tmp/imds-proxy-{os.getuid()}/control.sock")
