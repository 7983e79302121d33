"""SIGTERM: the daemon stops accepting, lets the request in flight finish, and returns."""

from __future__ import annotations

import asyncio
import dataclasses
import os
import signal
from datetime import UTC, datetime, timedelta

import aiohttp

from imds_proxy.config.listeners import Listener
from imds_proxy.engine.policy import RefreshPolicy
from imds_proxy.runtime import daemon

from conftest import TOKEN, TTL, make_config
from fakes import FakeClock, FakeSource, remember


async def test_sigterm_lets_the_request_in_flight_finish_and_refuses_new_ones() -> None:
    cfg = make_config(admin_listen="off", control_socket=None)
    # Credentials with 10 min left (under the 30 min floor): a request waits for new ones, up to
    # stale_wait, while the test holds the source's gate shut — a request in flight.
    source = FakeSource(FakeClock(datetime.now(UTC) - timedelta(minutes=50)))
    policy = dataclasses.replace(RefreshPolicy.of(cfg), stale_wait=timedelta(seconds=2))
    ready: asyncio.Future[list[Listener]] = asyncio.get_running_loop().create_future()

    def on_ready(bound: list[Listener]) -> None:
        source.gate = asyncio.Event()
        ready.set_result(bound)

    served = asyncio.create_task(daemon.serve(cfg, {"test-role": source}, policy=policy, on_ready=on_ready))
    base = (await asyncio.wait_for(ready, 10))[0].url
    async with aiohttp.ClientSession() as http:
        async with http.put(base + "latest/api/token", headers={TTL: "60"}) as r:
            token = await r.text()

        async def fetch() -> tuple[int, dict[str, str]]:
            url = base + "latest/meta-data/iam/security-credentials/test-role"
            async with http.get(url, headers={TOKEN: token}) as r:
                return r.status, remember(await r.json(content_type=None))

        in_flight = asyncio.create_task(fetch())
        await asyncio.sleep(0.3)  # the request is now waiting in its handler
        os.kill(os.getpid(), signal.SIGTERM)
        status, doc = await asyncio.wait_for(in_flight, 10)
        await asyncio.wait_for(served, 10)  # returned: no exception
    assert status == 200 and doc["Code"] == "Success"
    try:
        async with aiohttp.ClientSession() as http, http.put(base + "latest/api/token", headers={TTL: "60"}):
            raise AssertionError("still accepting after SIGTERM")
    except aiohttp.ClientConnectorError:
        pass
