"""A web page in a real browser gets no token and no credential: headless Chromium opens an
attacker's page — from another loopback port, and by DNS rebinding on the daemon's own origin —
that tries fetch, a form, <img> and <script> against both channels; the daemon refuses each at its
gate and logs it, and nothing secret reaches the page or Chromium's output."""

from __future__ import annotations

import asyncio
import json
import re
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer

from browser_support import Page, chromium
from conftest import TOKEN, TTL
from fakes import ISSUED, remember
from live_daemon import CONTAINER_TOKEN, credentials, live_daemon
from procs import Daemon

PAGE = (Path(__file__).parent / "browser" / "attacker.html").read_bytes()
#: The rebinding attacker's name: Chromium resolves it to 127.0.0.1, and nothing else at all.
ATTACKER = "attacker.test"
#: Chromium's own block of public pages reaching loopback, off where the daemon's check is tested.
NO_LOCAL_NETWORK_BLOCK = "--disable-features=LocalNetworkAccessChecks"
#: The gate's refusals of a browser's request: by its headers, or by a Host that is a name.
BROWSER = "Forbidden (browser requests are not served)"
REBOUND = "Forbidden (Host must be an IP address or localhost)"
REFUSED = re.compile(r"refused status=(\d+) client=127\.0\.0\.1 (\S+) (\S+): (.*)$")
#: The paths the page aims at: token, role listing, the role, the container endpoint.
TARGETS = ("/latest/api/token", "/latest/meta-data/iam/security-credentials/", "/v1/credentials")
#: The attempts attack() in attacker.html makes, each recorded once.
ATTEMPTS = 11


class Live:
    """The daemon, its port, its role and the credentials it serves (which no page may see)."""

    def __init__(self, daemon: Daemon, port: int) -> None:
        self.daemon = daemon
        self.port = port
        self.served = remember(credentials(port))
        put = urllib.request.Request(f"{self.base}/latest/api/token", method="PUT", headers={TTL: "60"})
        with urllib.request.urlopen(put, timeout=10) as r:
            token = r.read().decode()
        ISSUED.add(token)
        listing = urllib.request.Request(f"{self.base}/latest/meta-data/iam/security-credentials/")
        listing.add_header(TOKEN, token)
        with urllib.request.urlopen(listing, timeout=10) as r:
            self.role = r.read().decode()

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def secrets(self) -> dict[str, str]:
        return {k: self.served[k] for k in ("AccessKeyId", "SecretAccessKey", "Token")}


@pytest.fixture(scope="module")
def live(tmp_path_factory: pytest.TempPathFactory, local_aws: Any) -> Iterator[Live]:
    with live_daemon(tmp_path_factory.mktemp("browser"), local_aws) as (d, port):
        yield Live(d, port)


@pytest.fixture
async def attacker_site(aiohttp_server: Any) -> TestServer:
    """The attacker's own server, on another loopback port."""

    async def page(_: web.Request) -> web.Response:
        return web.Response(body=PAGE, content_type="text/html")

    app = web.Application()
    app.router.add_get("/", page)
    server: TestServer = await aiohttp_server(app)
    return server


async def attack(page: Page, live: Live, target: str) -> tuple[list[dict[str, Any]], str]:
    """Run the page's attacks on `target`; what it found (one record per attempt) and its DOM.
    The page is even handed the container token, as if it had leaked."""
    args = json.dumps({"target": target, "role": live.role, "auth": CONTAINER_TOKEN})
    findings = await page.evaluate(f"attack({args})")
    dom = await page.evaluate("document.documentElement.outerHTML")
    assert isinstance(findings, str) and isinstance(dom, str)
    return [json.loads(line) for line in findings.splitlines()], dom


async def refusals_since(live: Live, before: int, count: int) -> list[re.Match[str]]:
    """The daemon's refusal lines logged after line `before`, once `count` have come (bounded)."""
    deadline = time.monotonic() + 5
    while True:
        found = [m for line in live.daemon.stderr[before:] if (m := REFUSED.search(line))]
        if len(found) >= count or time.monotonic() > deadline:
            return found
        await asyncio.sleep(0.05)


def assert_nothing_reached_the_page(findings: list[dict[str, Any]], dom: str, live: Live) -> None:
    assert len(findings) == ATTEMPTS, [f["name"] for f in findings]  # each finished and was recorded
    for finding in findings:
        status = finding.get("status", 0)
        assert not 200 <= status < 300, f"the page read an answer: {finding['name']}, status {status}"
    for name, value in live.secrets().items():
        assert value not in dom, f"the page's DOM holds the served {name}"
    assert "SecretAccessKey" not in dom, "the page's DOM holds a credential document"


def assert_no_secret_in(where: str, text: str) -> None:
    """No secret, session token, IMDSv2 token or the container token (all in ISSUED) in `text`."""
    leaked = [s for s in ISSUED if s in text]
    assert not leaked, f"{where} holds a token or a secret the daemon issued"


def assert_no_secret_in_the_outputs(live: Live, chromium_output: Path) -> None:
    assert_no_secret_in("Chromium's output", chromium_output.read_text(errors="replace"))
    assert_no_secret_in("the daemon's log", "\n".join(live.daemon.stderr + live.daemon.stdout))


def assert_gate_refused_every_attempt(lines: list[re.Match[str]], attempts: int, reasons: set[str]) -> None:
    """Every attempt reached the daemon (Chromium itself stopped none), every request the browser
    sent was refused by the gate (a 403 for one of `reasons`), and every target path among them."""
    assert len(lines) >= attempts, "\n".join(m.string for m in lines)
    for m in lines:
        assert (m[1], m[4]) in {("403", r) for r in reasons}, m.string
    refused = {m[3] for m in lines}
    for path in TARGETS:
        assert any(p.startswith(path) for p in refused), f"no refusal of {path} logged: {sorted(refused)}"


async def test_a_page_on_another_loopback_port_reads_nothing(
    live: Live, attacker_site: TestServer, tmp_path: Path
) -> None:
    before = len(live.daemon.stderr)
    async with chromium(tmp_path, ATTACKER) as (page, output):
        await page.open(str(attacker_site.make_url("/")))
        findings, dom = await attack(page, live, live.base)
    assert_nothing_reached_the_page(findings, dom, live)
    # Chromium tags each of these with Origin or Sec-Fetch-*: the browser-header check stops all.
    lines = await refusals_since(live, before, len(findings))
    assert_gate_refused_every_attempt(lines, len(findings), {BROWSER})
    assert_no_secret_in_the_outputs(live, output)


async def test_a_rebinding_page_on_the_daemons_own_origin_reads_nothing(live: Live, tmp_path: Path) -> None:
    # The attacker's name first resolved to the attacker's server, which sent the page (served
    # here by the browser itself); now it resolves to 127.0.0.1, so the page's own origin is the
    # daemon's host and port: same-origin requests, no CORS in the way, and over plain http to a
    # name Chromium sends no Sec-Fetch-* headers. Chromium's Local Network Access would stop
    # these itself (a page from a public address asking loopback); it is off, because other
    # browsers, older Chromium and pages served from the local network have no such block:
    # only the daemon's Host check stands.
    origin = f"http://{ATTACKER}:{live.port}"
    before = len(live.daemon.stderr)
    async with chromium(tmp_path, ATTACKER, NO_LOCAL_NETWORK_BLOCK) as (page, output):
        await page.serve(origin + "/", PAGE)
        await page.open(origin + "/")
        findings, dom = await attack(page, live, "")
    assert_nothing_reached_the_page(findings, dom, live)
    lines = await refusals_since(live, before, len(findings))
    assert_gate_refused_every_attempt(lines, len(findings), {BROWSER, REBOUND})
    rebound = {m[3] for m in lines if m[4] == REBOUND}
    for path in TARGETS[1:]:  # GETs carry no Origin; the token PUT does, and is refused for it
        assert any(p.startswith(path) for p in rebound), f"{path} was not refused by the Host check"
    assert_no_secret_in_the_outputs(live, output)
