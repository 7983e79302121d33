"""The container image without Docker: the Dockerfile's install step is docker/install.sh,
which runs here into a fresh venv from the same files the Dockerfile copies; the image's
user, entrypoint, health check and build context are checked as written."""

from __future__ import annotations

import asyncio
import json
import os
import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from container_support import ServerFactory, now_clock, serve, two_roles
from procs import isolated_env

ROOT = Path(__file__).parent.parent
DOCKERFILE = ROOT / "Dockerfile"
#: Filled by `make test` (Makefile: $(WHEELS)): the dependencies' wheels, so that pip runs
#: offline here.
WHEELHOUSE = Path(sys.executable).parent.parent / "wheelhouse"


def instructions(stage: int) -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) of one stage of the Dockerfile, continuation lines joined."""
    text = re.sub(r"\\\n", " ", DOCKERFILE.read_text())
    lines = [line.strip() for line in text.splitlines() if line.strip() and not line.lstrip().startswith("#")]
    stages: list[list[tuple[str, str]]] = []
    for line in lines:
        keyword, _, rest = line.partition(" ")
        if keyword.upper() == "FROM":
            stages.append([])
        elif stages:
            stages[-1].append((keyword.upper(), rest.strip()))
    return stages[stage]


def build_context(dest: Path) -> Path:
    """The build stage's WORKDIR after its COPY instructions: the files the image installs."""
    workdir = dest / "src"
    for keyword, args in instructions(0):
        if keyword == "COPY":
            *sources, target = shlex.split(args)
            assert not any(s.startswith("--") for s in sources), (
                "build-stage COPY takes files from the context"
            )
            for source in sources:
                to = workdir / target / Path(source).name if target.endswith("/") else workdir / target
                if (ROOT / source).is_dir():
                    shutil.copytree(ROOT / source, to, ignore=shutil.ignore_patterns("__pycache__"))
                else:
                    to.parent.mkdir(parents=True, exist_ok=True)
                    shutil.copy2(ROOT / source, to)
    return workdir


def test_build_stage_installs_with_the_script() -> None:
    runs = [args for keyword, args in instructions(0) if keyword == "RUN"]
    assert runs == [
        "PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1 sh docker/install.sh /src /opt/imds-proxy"
    ]
    assert ("WORKDIR", "/src") in instructions(0)


def test_image_runs_as_a_fixed_numeric_user_with_exec_form_entrypoint_and_healthcheck() -> None:
    final = dict(instructions(1))
    assert re.fullmatch(r"\d+:\d+", final["USER"]) and not final["USER"].startswith("0:")
    assert json.loads(final["ENTRYPOINT"]) == ["imds-proxy"]
    health = final["HEALTHCHECK"]
    assert json.loads(health[health.index("CMD") + 3 :]) == ["imds-proxy", "healthcheck"]
    assert "COPY --from=build /opt/imds-proxy /opt/imds-proxy" in [
        f"COPY {a}" for k, a in instructions(1) if k == "COPY"
    ]


def test_build_context_is_an_allow_list() -> None:
    lines = [
        line
        for line in (ROOT / ".dockerignore").read_text().splitlines()
        if line and not line.startswith("#")
    ]
    assert lines[0] == "*"
    allowed = {line[1:].rstrip("/") for line in lines if line.startswith("!")}
    copied = {s for k, a in instructions(0) if k == "COPY" for s in shlex.split(a)[:-1]}
    assert copied <= allowed, "the Dockerfile copies something the context does not contain"
    assert allowed == {"pyproject.toml", "README.md", "imds_proxy", "docker/install.sh"}


@pytest.mark.install
async def test_install_script_gives_a_working_imds_proxy_and_healthcheck(
    tmp_path: Path, aiohttp_server: ServerFactory
) -> None:
    """Runs docker/install.sh as the build stage does, offline from the local wheelhouse
    (no Docker, no index), then the image's HEALTHCHECK command against a running app."""
    if not WHEELHOUSE.is_dir():
        if os.environ.get("CI"):
            pytest.fail(f"{WHEELHOUSE} is missing (CI is set): run `make test`")
        pytest.skip(f"{WHEELHOUSE} is missing: run `make test`")
    src = build_context(tmp_path)
    venv = tmp_path / "opt" / "imds-proxy"
    pip = {"PIP_NO_INDEX": "1", "PIP_FIND_LINKS": str(WHEELHOUSE), "PIP_NO_CACHE_DIR": "1"}
    proc = await asyncio.create_subprocess_exec(
        "sh",
        str(src / "docker" / "install.sh"),
        str(src),
        str(venv),
        cwd=src,
        env=isolated_env(tmp_path, pip),
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(proc.communicate(), 240)
    assert proc.returncode == 0, err.decode()[-2000:]
    assert out.decode().startswith("imds-proxy ")
    assert not (venv / "bin" / "pip").exists()

    served = await serve(aiohttp_server, two_roles(), now_clock())
    check = await asyncio.create_subprocess_exec(
        str(venv / "bin" / "imds-proxy"),
        "healthcheck",
        "--listen",
        f"127.0.0.1:{served.port}",
        env=isolated_env(tmp_path),
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(check.communicate(), 60)
    assert check.returncode == 0, err.decode()
    assert out.decode().startswith("healthy: role one")


def test_install_script_is_posix_sh() -> None:
    """The slim image's /bin/sh is dash: no bashisms."""
    assert subprocess.run(["sh", "-n", str(ROOT / "docker" / "install.sh")]).returncode == 0
