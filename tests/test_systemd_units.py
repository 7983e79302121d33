"""The shipped units (systemd/) pass `systemd-analyze verify` against the documented install
(here: a venv at a temporary prefix, the units' /opt/imds-proxy rewritten to it; .ci/run does
the real install into /opt/imds-proxy and verifies the files unedited), and say what
docs/host.md promises: the two sockets, FreeBind, no capability for the service."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from host_support import ROOT, shared_venv  # noqa: F401
from sdk_support import skip_unless_ci

UNITS = ("imds-proxy.service", "imds-proxy.socket", "imds-proxy-address.service")
PREFIX = "/opt/imds-proxy"


def unit(name: str) -> str:
    return (ROOT / "systemd" / name).read_text()


def test_the_units_pass_systemd_analyze_verify(shared_venv: Path, tmp_path: Path) -> None:  # noqa: F811
    if shutil.which("systemd-analyze") is None:
        skip_unless_ci("systemd-analyze is not installed (apt-get install systemd)")
    for name in UNITS:
        if name.endswith(".service"):
            assert f"ExecStart={PREFIX}/bin/imds-proxy " in unit(name), name
        (tmp_path / name).write_text(unit(name).replace(PREFIX, str(shared_venv)))
    done = subprocess.run(
        ["systemd-analyze", "verify", *UNITS], cwd=tmp_path, capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0 and not done.stderr.strip(), done.stderr


def test_a_broken_exec_start_fails_verify(tmp_path: Path) -> None:
    """The check above can fail: verify rejects a unit whose program is not there."""
    if shutil.which("systemd-analyze") is None:
        skip_unless_ci("systemd-analyze is not installed (apt-get install systemd)")
    text = unit("imds-proxy-address.service").replace(PREFIX, str(tmp_path / "nowhere"))
    (tmp_path / "imds-proxy-address.service").write_text(text)
    argv = ["systemd-analyze", "verify", "imds-proxy-address.service"]
    done = subprocess.run(argv, cwd=tmp_path, capture_output=True, text=True, timeout=60)
    assert "is not executable" in done.stderr and done.returncode != 0, done.stderr


@pytest.mark.parametrize(
    "line", ["ListenStream=169.254.169.254:80", "ListenStream=[fd00:ec2::254]:80", "FreeBind=yes"]
)
def test_the_socket_unit_listens_on_both_metadata_addresses(line: str) -> None:
    assert line in unit("imds-proxy.socket").splitlines()


def test_the_service_has_no_capability_and_the_address_comes_first() -> None:
    service = unit("imds-proxy.service").splitlines()
    assert "CapabilityBoundingSet=" in service
    assert not any(line.startswith("AmbientCapabilities") for line in service)
    address = unit("imds-proxy-address.service").splitlines()
    assert {"Type=oneshot", "RemainAfterExit=yes", "Before=imds-proxy.socket"} <= set(address)
