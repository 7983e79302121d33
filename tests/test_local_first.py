"""Everything local is checked before the first STS call (issue 11, point 6): a busy listen port,
an unusable control socket directory, and every config error at once — STS is never called."""

from __future__ import annotations

import socket
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from imds_proxy.aws.sts.source import AssumeRoleSource
from imds_proxy.config import Config
from imds_proxy.engine.credentials import Source
from imds_proxy.errors import ControlError, ListenError
from imds_proxy.runtime import daemon

from conftest import make_config
from fakes import FakeClock, FakeSts


@pytest.fixture
def busy_port() -> Iterator[int]:
    """A loopback port something else already listens on."""
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        yield busy.getsockname()[1]


def sources_over(cfg: Config, sts: FakeSts) -> dict[str, Source]:
    """Every role's real AssumeRole source, its STS calls going to `sts`."""
    return {name: AssumeRoleSource(spec, sts.clock, lambda _s: sts) for name, spec in cfg.roles.items()}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def test_a_busy_listen_port_fails_before_sts_is_called(busy_port: int, tmp_path: Path) -> None:
    first = free_port()
    cfg = make_config(
        listen=[f"127.0.0.1:{first}", f"127.0.0.1:{busy_port}"],
        admin_listen="off",
        control_socket=str(tmp_path / "control.sock"),
    )
    sts = FakeSts(FakeClock())
    started = time.monotonic()
    with pytest.raises(ListenError, match=f"cannot listen on 127.0.0.1:{busy_port}"):
        await daemon.serve(cfg, sources_over(cfg, sts))
    assert time.monotonic() - started < 1
    assert sts.log == []
    assert not (tmp_path / "control.sock").exists()  # what was started is stopped again
    with socket.socket() as again:
        again.bind(("127.0.0.1", first))  # the listener bound before the busy one is closed


async def test_an_unusable_control_socket_directory_fails_before_sts_is_called(tmp_path: Path) -> None:
    blocked = tmp_path / "a-file"
    blocked.write_text("")
    cfg = make_config(admin_listen="off", control_socket=str(blocked / "control.sock"))
    sts = FakeSts(FakeClock())
    with pytest.raises(ControlError, match="cannot create the control socket directory"):
        await daemon.serve(cfg, sources_over(cfg, sts))
    assert sts.log == []
