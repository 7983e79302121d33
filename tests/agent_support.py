"""The node agent under test: the fake API server on loopback, a kubeconfig for it, the policy
file, and the real agent (run_agent over the real kubernetes_asyncio client) in this loop."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from aiohttp import web

from imds_proxy.aws.sts.clients import ClientFactory
from imds_proxy.config.admin import AdminSettings
from imds_proxy.config.listeners import Listener
from imds_proxy.kubernetes.agent import Bind, run_agent
from imds_proxy.kubernetes.api import KubeApi
from imds_proxy.kubernetes.gate import Agent
from imds_proxy.kubernetes.pods import Pod
from imds_proxy.kubernetes.settings import AgentSettings, RateLimit
from imds_proxy.runtime.reload import listen_socket

from fakes import FakeClock
from kube_fake import FakeCluster, kubeconfig

NODE = "node-a"
ROLE_WEB = "arn:aws:iam::123456789012:role/shop-web"
POLICY: dict[str, Any] = {
    "clusterName": "test-cluster",
    "bindings": [
        {
            "namespace": "shop",
            "serviceAccount": "web",
            "roleArn": ROLE_WEB,
            "duration": 1800,
            "tags": {"team": "shop"},
        },
    ],
}


@dataclass
class Running:
    cluster: FakeCluster
    agent: Agent
    listeners: list[Listener]
    policy_file: Path
    changes: asyncio.Queue[tuple[Pod | None, Pod | None]] = field(default_factory=asyncio.Queue)

    @property
    def url(self) -> str:
        return self.listeners[0].url.rstrip("/") + "/v1/credentials"

    async def next_change(self) -> tuple[Pod | None, Pod | None]:
        """The next pod event the agent applied (bounded: 5 s)."""
        return await asyncio.wait_for(self.changes.get(), 5)


async def start_api(cluster: FakeCluster) -> tuple[web.AppRunner, str]:
    runner = web.AppRunner(cluster.app(), access_log=None, shutdown_timeout=1)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    return runner, f"http://127.0.0.1:{runner.addresses[0][1]}"


@contextlib.asynccontextmanager
async def running_agent(
    tmp_path: Path,
    clock: FakeClock,
    sts: ClientFactory,
    cluster: FakeCluster,
    *,
    policy: dict[str, Any] | None = None,
    listeners: tuple[Listener, ...] = (Listener("127.0.0.1", 0),),
    bind: Bind = listen_socket,
    rate: RateLimit | None = None,
    wait_synced: bool = True,
    admin: AdminSettings | None = None,
) -> AsyncIterator[Running]:
    api_runner, server = await start_api(cluster)
    config_file = tmp_path / "kubeconfig"
    config_file.write_text(yaml.safe_dump(kubeconfig(server, cluster.agent_token)))
    policy_file = tmp_path / "policy.yaml"
    policy_file.write_text(yaml.safe_dump(policy if policy is not None else POLICY))
    settings = AgentSettings(
        node_name=NODE,
        policy_file=policy_file,
        listeners=listeners,
        kubeconfig=config_file,
        rate=rate or RateLimit(),
        policy_poll_seconds=3600,
    )
    stop = asyncio.Event()
    ready: asyncio.Future[tuple[list[Listener], Agent]] = asyncio.get_running_loop().create_future()

    def on_ready(bound: list[Listener], agent: Agent) -> None:
        ready.set_result((bound, agent))

    try:
        async with KubeApi(config_file) as api:
            task = asyncio.create_task(
                run_agent(
                    settings,
                    api,
                    sts,
                    admin=admin or AdminSettings(),
                    clock=clock,
                    bind=bind,
                    stop=stop,
                    on_ready=on_ready,
                )
            )
            try:
                done, _ = await asyncio.wait([task, ready], timeout=10, return_when=asyncio.FIRST_COMPLETED)
                if task in done:
                    task.result()  # raises what stopped it
                bound, agent = ready.result()
                run = Running(cluster, agent, bound, policy_file)
                agent.pods.on_change.append(lambda old, new: run.changes.put_nowait((old, new)))
                if wait_synced:
                    await asyncio.wait_for(agent.pods.synced.wait(), 5)
                    while not run.changes.empty():  # what the first list brought is not news
                        run.changes.get_nowait()
                yield run
            finally:
                stop.set()
                await asyncio.wait_for(task, 10)
    finally:
        await cluster.close()
        await api_runner.cleanup()
