"""What the host tests share: an interpreter any uid can run (a venv from Debian's python3 and
the wheelhouse `make test` builds), moto's STS inside a namespace, and IMDSv2 asked from there."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from netns import Netns
from sdk_support import skip_unless_ci

ROOT = Path(__file__).parent.parent
WHEELS = ROOT / ".venv" / "wheelhouse"
SYSTEM_PYTHON = Path("/usr/bin/python3")
ROLE_ARN = "arn:aws:iam::123456789012:role/host-role"
#: A client of the metadata service, run inside a namespace: IMDSv2 token, listing, document.
#: Prints the document's AccessKeyId, or `ERROR <what>`. Secrets are never printed.
FETCH = r"""
import json, sys, urllib.request, urllib.error
base, timeout = sys.argv[1].rstrip("/"), float(sys.argv[2])
try:
    req = urllib.request.Request(base + "/latest/api/token", method="PUT",
                                 headers={"X-aws-ec2-metadata-token-ttl-seconds": "60"})
    token = urllib.request.urlopen(req, timeout=timeout).read().decode()
    h = {"X-aws-ec2-metadata-token": token}
    path = base + "/latest/meta-data/iam/security-credentials/"
    get = lambda url: urllib.request.urlopen(urllib.request.Request(url, headers=h), timeout=timeout).read()
    doc = json.loads(get(path + get(path).decode()))
    print(doc["AccessKeyId"])
except urllib.error.HTTPError as e:
    print("ERROR", e.code, e.read().decode()[:80])
except OSError as e:
    print("ERROR", type(e).__name__, getattr(e, "reason", e))
"""


def fetch_key(ns: Netns, base: str, timeout: float = 2.0) -> str:
    """The AccessKeyId IMDSv2 at `base` serves inside `ns`, or `ERROR ...`."""
    done = ns.sh(sys.executable, "-c", FETCH, base, str(timeout), timeout=timeout * 3 + 30)
    return done.stdout.strip()


@pytest.fixture(scope="session")
def shared_venv() -> Iterator[Path]:
    """imds-proxy installed in a venv of /usr/bin/python3 under a world-readable directory, so
    an unprivileged uid can run it (root's pyenv is in a 0700 home)."""
    if not SYSTEM_PYTHON.is_file() or not (WHEELS / ".done").is_file():
        skip_unless_ci(f"{SYSTEM_PYTHON} or {WHEELS} (made by `make test`) is missing")
    where = Path(tempfile.mkdtemp(prefix="imds-proxy-venv-"))
    try:
        where.chmod(0o755)
        venv = where / "venv"
        subprocess.run([str(SYSTEM_PYTHON), "-m", "venv", str(venv)], check=True, timeout=120)
        pip = [str(venv / "bin" / "pip"), "install", "--quiet", "--no-index", "-f", str(WHEELS), str(ROOT)]
        subprocess.run(pip, check=True, timeout=300, capture_output=True)
        yield venv
    finally:
        shutil.rmtree(where, ignore_errors=True)


@contextmanager
def moto_sts(ns: Netns, port: int = 5000) -> Iterator[str]:
    """moto's server on the namespace's loopback; its URL."""
    moto = Path(sys.executable).parent / "moto_server"
    proc = subprocess.Popen(
        ns.argv(str(moto), "-H", "127.0.0.1", "-p", str(port)),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        for _ in range(100):  # bounded: 20 s
            code = f"import urllib.request; urllib.request.urlopen('{url}/moto-api/', timeout=1)"
            probe = ns.sh(sys.executable, "-c", code, check=False)
            if probe.returncode == 0:
                break
            time.sleep(0.2)
        else:
            pytest.fail("moto's server did not start within 20 s")
        yield url
    finally:
        proc.terminate()
        proc.wait(10)


def daemon_env(sts_url: str) -> dict[str, str]:
    """The daemon's own (moto) source credentials and STS, nothing from the user's set-up."""
    return {
        "AWS_ACCESS_KEY_ID": "AKIAHOSTTESTSOURCE01",
        "AWS_SECRET_ACCESS_KEY": "host-test-source-secret",
        "AWS_CONFIG_FILE": "/nonexistent/config",
        "AWS_SHARED_CREDENTIALS_FILE": "/nonexistent/credentials",
        "IMDS_PROXY_STS_ENDPOINT_URL": sts_url,
        "IMDS_PROXY_ROLE_ARN": ROLE_ARN,
        "IMDS_PROXY_REGION": "us-east-1",
    }


@contextmanager
def daemon(argv: list[str], env: dict[str, str], log: Path) -> Iterator[subprocess.Popen[bytes]]:
    """A daemon process (already inside a namespace), stopped with SIGTERM afterwards."""
    with log.open("wb") as out:
        proc = subprocess.Popen(argv, env={"PATH": os.environ["PATH"], **env}, stdout=out, stderr=out)
    try:
        yield proc
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def wait_for_key(ns: Netns, base: str, proc: subprocess.Popen[bytes], log: Path) -> str:
    """The first key served at `base` (bounded: 30 s); fails with the daemon's log."""
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        key = fetch_key(ns, base, timeout=5)
        if not key.startswith("ERROR"):
            return key
        if proc.poll() is not None:
            break
        time.sleep(0.3)
    pytest.fail(f"no credentials at {base}: {key}\n{log.read_text()}")


def loads(text: str) -> dict[str, object]:
    out: dict[str, object] = json.loads(text.strip().splitlines()[-1])
    return out
