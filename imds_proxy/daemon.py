"""The process shell: AppRunner and sites, readiness (sd_notify), SIGTERM/SIGINT."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import socket
import time
from collections.abc import Callable, Sequence
from typing import Any

from aiohttp import web

from imds_proxy.app import create_app
from imds_proxy.config import Config, Listener
from imds_proxy.errors import CredentialsUnavailable, ListenError
from imds_proxy.refresh import CredentialEngine
from imds_proxy.tokens import TokenIssuer

log = logging.getLogger("imds_proxy.daemon")

OnReady = Callable[[list[Listener]], None]


def sd_notify(state: str) -> None:
    """Tell systemd (Type=notify) our state; a no-op outside systemd."""
    address = os.environ.get("NOTIFY_SOCKET")
    if not address:
        return
    if address.startswith("@"):
        address = "\0" + address[1:]
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as s:
        try:
            s.connect(address)
            s.sendall(state.encode())
        except OSError as e:
            log.warning("sd_notify failed: %s", e)


async def _bind(runner: web.AppRunner, listener: Listener) -> Listener:
    site = web.TCPSite(runner, listener.host, listener.port, reuse_address=True)
    try:
        await site.start()
    except OSError as e:
        hint = "pick another --listen port, or stop what holds it"
        if e.errno == 99:  # EADDRNOTAVAIL
            hint = (
                f"{listener.host} is not an address of this host: "
                "add it (e.g. `ip addr add`) or listen elsewhere"
            )
        elif e.errno == 13:  # EACCES
            hint = "ports below 1024 need root or CAP_NET_BIND_SERVICE"
        raise ListenError(f"cannot listen on {listener}: {e.strerror}; {hint}") from None
    # With port 0 the kernel picks the port: report the one actually bound.
    return listener.bound_to(int(runner.addresses[0][1]))


async def _prime(engine: CredentialEngine, name: str) -> None:
    """First credentials for a role. A role whose source waits for input (an MFA code) does
    not hold start-up: it answers with EC2's error document until the input arrives."""
    try:
        creds = await engine.get(name)
    except CredentialsUnavailable as e:
        if e.cause is None or not e.cause.needs_input:
            raise
        log.info("role %s: serving EC2's error document until the input arrives", name)
        return
    log.info("role %s ready: key=%s", name, creds.key_suffix)


async def serve(
    config: Config,
    engine: CredentialEngine,
    on_ready: OnReady | None = None,
    services: Sequence[contextlib.AbstractAsyncContextManager[Any]] = (),
) -> None:
    """Start `services` (control socket, MFA watcher), prime credentials, bind every listener,
    report ready, run until SIGTERM/SIGINT.

    Raises CredentialsUnavailable when the first credentials cannot be had, ListenError
    when a listener cannot be bound; nothing is served in either case.
    """
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    tokens = TokenIssuer(time.time)
    runners: list[web.AppRunner] = []
    started = contextlib.AsyncExitStack()
    try:
        for service in services:
            await started.enter_async_context(service)
        for name in engine.role_names:
            await _prime(engine, name)
        bound: list[Listener] = []
        for i, listener in enumerate(config.listeners):
            # One app per listener, as each serves one role; the first runs the refresher.
            role = config.listener_role(listener)
            app = create_app(config, engine, tokens=tokens, role=role, background_refresh=i == 0)
            runner = web.AppRunner(app, access_log=None, handle_signals=False)
            await runner.setup()
            runners.append(runner)
            bound.append(await _bind(runner, listener))
            log.info("serving IMDS for role %s on %s", role, bound[-1].url)
        if on_ready:
            on_ready(bound)
        sd_notify("READY=1")
        await stop.wait()
        log.info("stopping")
        sd_notify("STOPPING=1")
    finally:
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.remove_signal_handler(sig)
        for runner in runners:
            await runner.cleanup()
        await started.aclose()
