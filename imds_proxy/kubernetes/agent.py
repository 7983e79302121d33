"""The node agent at run time: it owns the engine of per-pod sessions, keeps the pod list and
the policy current, serves every listener that can be bound, and reports ready once synced."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
import socket
from collections.abc import Callable
from pathlib import Path
from typing import Protocol

from aiohttp import web

from imds_proxy.aws.sts.clients import ClientFactory
from imds_proxy.config.admin import AdminSettings
from imds_proxy.config.listeners import Listener
from imds_proxy.engine.credentials import Clock, utc_now
from imds_proxy.engine.policy import RefreshPolicy
from imds_proxy.engine.refresh import CredentialEngine
from imds_proxy.errors import ListenError
from imds_proxy.kubernetes.gate import Agent, create_agent_app
from imds_proxy.kubernetes.pods import PodApi, PodSet, keep_synced
from imds_proxy.kubernetes.policy import PolicyError, read_policy
from imds_proxy.kubernetes.ratelimit import PeerLimiter
from imds_proxy.kubernetes.review import ReviewApi, TokenReviewer
from imds_proxy.kubernetes.sessions import Sessions
from imds_proxy.kubernetes.settings import PATH, AgentSettings
from imds_proxy.runtime.admin_site import AdminSite
from imds_proxy.runtime.metrics import Metrics
from imds_proxy.runtime.reload import listen_socket

log = logging.getLogger("imds_proxy.kubernetes.agent")

Bind = Callable[[Listener], socket.socket]


class KubeApiLike(PodApi, ReviewApi, Protocol):
    """The API server as the agent uses it (api.KubeApi)."""


class PolicyWatcher:
    """Reads the policy file again when it changes (kubelet updates a mounted ConfigMap in
    place) or on SIGHUP; a policy that cannot be used is refused and the last good one stays."""

    def __init__(self, path: Path, sessions: Sessions) -> None:
        self.path = path
        self._sessions = sessions

    def load(self) -> bool:
        """Apply the file's policy if it changed; False (logged) when it cannot be used."""
        try:
            policy = read_policy(self.path)
        except PolicyError as e:
            log.error("policy reload refused, the current policy stays: %s", e)
            return False
        current = self._sessions.policy
        if current is not None and current.digest == policy.digest:
            return True
        self._sessions.set_policy(policy)
        log.info("policy: %d bindings, %s sessions", len(policy.bindings), policy.sessions)
        return True

    async def poll(self, every: float) -> None:
        while True:
            await asyncio.sleep(every)
            self.load()


def _unready(pods: PodSet, bound: list[Listener]) -> str | None:
    if not bound:
        return "no listener is bound yet"
    if not pods.synced.is_set():
        return "the pod list of this node is not synced yet"
    return None


async def _bind_all(runner: web.AppRunner, listeners: tuple[Listener, ...], bind: Bind) -> list[Listener]:
    """Every listener that can be bound: a node without IPv6 (no fd00:ec2::23) still serves
    on IPv4. None at all is an error."""
    bound: list[Listener] = []
    errors: list[str] = []
    for listener in listeners:
        try:
            sock = bind(listener)
        except ListenError as e:
            log.warning("not serving on %s: %s", listener, e)
            errors.append(str(e))
            continue
        await web.SockSite(runner, sock).start()
        bound.append(listener.bound_to(int(sock.getsockname()[1])))
    if not bound:
        raise ListenError("no listener could be bound: " + "; ".join(errors))
    return bound


async def run_agent(
    settings: AgentSettings,
    api: KubeApiLike,
    client_factory: ClientFactory,
    *,
    admin: AdminSettings,
    clock: Clock = utc_now,
    bind: Bind = listen_socket,
    stop: asyncio.Event | None = None,
    on_ready: Callable[[list[Listener], Agent], None] | None = None,
    handle_signals: bool = False,
) -> None:
    """Serve until `stop` is set (or SIGTERM/SIGINT with handle_signals; SIGHUP re-reads the
    policy). PolicyError when the policy cannot be used at start, ListenError when nothing
    can be bound."""
    stop = stop or asyncio.Event()
    engine = CredentialEngine({}, RefreshPolicy(), clock)
    metrics = Metrics(lambda: [engine.status(name) for name in engine.role_names])
    engine.observe(metrics)
    sessions = Sessions(
        clock,
        client_factory,
        region=settings.region,
        sts_endpoint_url=settings.sts_endpoint_url,
        engine=engine,
    )
    policy = PolicyWatcher(settings.policy_file, sessions)
    sessions.set_policy(read_policy(settings.policy_file))  # an unusable policy stops the start
    pods = PodSet(settings.node_name)
    pods.on_change.append(sessions.pod_changed)
    agent = Agent(
        pods=pods,
        reviewer=TokenReviewer(api, pods, settings.audience, clock, settings.review_cache_size),
        sessions=sessions,
        limiter=PeerLimiter(settings.rate),
        hosts=frozenset(lst.host for lst in settings.listeners),
        node_ips=settings.node_ips,
        reload_policy=policy.load,
    )
    runner = web.AppRunner(create_agent_app(agent), access_log=None, handle_signals=False)
    bound: list[Listener] = []
    loop = asyncio.get_running_loop()
    hup = asyncio.Event()
    if handle_signals:
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
        loop.add_signal_handler(signal.SIGHUP, hup.set)
    tasks: list[asyncio.Task[None]] = []
    try:
        async with contextlib.AsyncExitStack() as started:
            await started.enter_async_context(AdminSite(admin, metrics.render, lambda: _unready(pods, bound)))
            await started.enter_async_context(engine.running())
            tasks.append(asyncio.create_task(keep_synced(api, pods), name="pod watch"))
            tasks.append(asyncio.create_task(policy.poll(settings.policy_poll_seconds), name="policy"))
            await runner.setup()
            bound.extend(await _bind_all(runner, settings.listeners, bind))
            for where in bound:
                log.info("serving pods of node %s on %s%s", settings.node_name, where.url.rstrip("/"), PATH)
            if on_ready is not None:
                on_ready(bound, agent)
            while not stop.is_set():
                waits = [asyncio.create_task(stop.wait()), asyncio.create_task(hup.wait())]
                await asyncio.wait(waits, return_when=asyncio.FIRST_COMPLETED)
                for w in waits:
                    w.cancel()
                if hup.is_set():
                    hup.clear()
                    agent.reload_policy()
            log.info("stopping")
    finally:
        if handle_signals:
            for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
                loop.remove_signal_handler(sig)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        await sessions.close()
        await runner.cleanup()
