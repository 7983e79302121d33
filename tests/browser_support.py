"""Headless Chromium on loopback only, driven over the DevTools protocol (aiohttp's websocket
client): open a page, serve a document in the attacker's place, run a script, read the DOM."""

from __future__ import annotations

import asyncio
import base64
import itertools
import json
import os
import shutil
import signal
import subprocess
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager, suppress
from pathlib import Path
from typing import Any

import aiohttp

from sdk_support import skip_unless_ci

#: Every wait on the browser is bounded by this.
WAIT = 15.0
#: Nothing reaches out: no proxy, no background or update traffic, no QUIC; the profile is fresh.
FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-extensions",
    "--no-proxy-server",
    "--enable-logging=stderr",  # the page's console lands in the output the test checks
    "--remote-debugging-address=127.0.0.1",
    "--remote-debugging-port=0",
)


def resolver_rules(attacker: str) -> str:
    """`attacker` resolves to 127.0.0.1 (the rebinding attacker's second answer); every other
    name fails to resolve, so nothing leaves the machine. IP literals are left alone."""
    return f"MAP {attacker} 127.0.0.1,MAP * ~NOTFOUND,EXCLUDE 127.0.0.1"


def require_chromium() -> str:
    """Debian's chromium; skip without it, but fail on CI (.ci/run installs it)."""
    path = shutil.which("chromium")
    if path is None:
        skip_unless_ci("chromium is not installed (apt-get install chromium)")
    assert path is not None
    return path


class Page:
    """One tab, attached over a flattened DevTools session."""

    def __init__(self, ws: aiohttp.ClientWebSocketResponse) -> None:
        self._ws = ws
        self._ids = itertools.count(1)
        self._replies: dict[int, asyncio.Future[dict[str, Any]]] = {}
        self._documents: dict[str, bytes] = {}
        self._tasks: set[asyncio.Task[None]] = set()
        self._loaded = asyncio.Event()
        self._session: str | None = None
        self._reader = asyncio.create_task(self._read())

    async def send(self, method: str, **params: Any) -> dict[str, Any]:
        key = next(self._ids)
        message: dict[str, Any] = {"id": key, "method": method, "params": params}
        if self._session is not None:
            message["sessionId"] = self._session
        reply = self._replies[key] = asyncio.get_running_loop().create_future()
        await self._ws.send_str(json.dumps(message))
        return await asyncio.wait_for(reply, WAIT)

    async def attach(self) -> None:
        target = await self.send("Target.createTarget", url="about:blank")
        attached = await self.send("Target.attachToTarget", targetId=target["targetId"], flatten=True)
        self._session = attached["sessionId"]
        await self.send("Page.enable")

    async def serve(self, url: str, html: bytes) -> None:
        """Answer the top-level request for `url` with `html` in the browser itself: what the
        attacker's server sent while the attacker's name still resolved to it."""
        self._documents[url] = html
        await self.send("Fetch.enable", patterns=[{"urlPattern": url, "resourceType": "Document"}])

    async def open(self, url: str) -> None:
        self._loaded.clear()
        await self.send("Page.navigate", url=url)
        await asyncio.wait_for(self._loaded.wait(), WAIT)

    async def evaluate(self, expression: str) -> Any:
        """The value of `expression` (awaited if it is a promise); a thrown error fails."""
        answer = await self.send(
            "Runtime.evaluate", expression=expression, awaitPromise=True, returnByValue=True
        )
        assert "exceptionDetails" not in answer, answer["exceptionDetails"]
        return answer["result"].get("value")

    async def close(self) -> None:
        self._reader.cancel()
        with suppress(asyncio.CancelledError):
            await self._reader

    async def _read(self) -> None:
        async for message in self._ws:
            data = json.loads(message.data)
            if "id" in data:
                reply = self._replies.pop(data["id"])
                if "error" in data:
                    reply.set_exception(AssertionError(f"DevTools: {data['error']}"))
                else:
                    reply.set_result(data["result"])
            elif data.get("method") == "Page.loadEventFired":
                self._loaded.set()
            elif data.get("method") == "Fetch.requestPaused":
                task = asyncio.create_task(self._answer(data["params"]))
                self._tasks.add(task)
                task.add_done_callback(self._tasks.discard)

    async def _answer(self, paused: dict[str, Any]) -> None:
        html = self._documents.get(paused["request"]["url"])
        if html is None:
            await self.send("Fetch.continueRequest", requestId=paused["requestId"])
            return
        await self.send(
            "Fetch.fulfillRequest",
            requestId=paused["requestId"],
            responseCode=200,
            responseHeaders=[{"name": "Content-Type", "value": "text/html; charset=utf-8"}],
            body=base64.b64encode(html).decode(),
        )


async def devtools_url(profile: Path, proc: asyncio.subprocess.Process) -> str:
    """The browser's DevTools websocket, from the file Chromium writes once it listens."""
    active = profile / "DevToolsActivePort"
    deadline = time.monotonic() + WAIT
    while time.monotonic() < deadline:
        if active.is_file() and len(lines := active.read_text().split()) == 2:
            return f"ws://127.0.0.1:{lines[0]}{lines[1]}"
        assert proc.returncode is None, f"chromium exited with {proc.returncode}"
        await asyncio.sleep(0.05)
    raise AssertionError(f"chromium wrote no {active} within {WAIT:.0f} s")


@asynccontextmanager
async def chromium(workdir: Path, attacker: str, *flags: str) -> AsyncIterator[tuple[Page, Path]]:
    """A fresh headless Chromium (with `flags` besides ours) whose only resolvable name is
    `attacker` (→ 127.0.0.1), one page attached, and the file its output (stdout and stderr)
    goes to."""
    binary = require_chromium()
    profile = workdir / "profile"
    profile.mkdir()
    output = workdir / "chromium.log"
    rules = resolver_rules(attacker)
    argv = [binary, *FLAGS, *flags, f"--user-data-dir={profile}", f"--host-resolver-rules={rules}"]
    with output.open("wb") as sink:
        proc = await asyncio.create_subprocess_exec(
            *argv, "about:blank", stdin=subprocess.DEVNULL, stdout=sink, stderr=sink, start_new_session=True
        )
    try:
        url = await devtools_url(profile, proc)
        async with aiohttp.ClientSession() as http, http.ws_connect(url, max_msg_size=0) as ws:
            page = Page(ws)
            try:
                await page.attach()
                yield page, output
            finally:
                await page.close()
    finally:
        with suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)  # our own child's group: the launcher and its renderers
        await asyncio.wait_for(proc.wait(), WAIT)
