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

from imds_proxy import channel
from imds_proxy.app import create_app
from imds_proxy.config import Config
from imds_proxy.errors import CredentialsUnavailable, ListenError
from imds_proxy.listeners import Listener
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


async def prime(engine: CredentialEngine, *, required: bool = True) -> None:
    """Get every role's first credentials; raises CredentialsUnavailable when `required`.
    Otherwise a role without credentials is logged and served anyway: its credentials path
    answers EC2's error document until the source recovers (what EC2 does for a role it
    cannot assume)."""
    for name in engine.role_names:
        try:
            creds = await engine.get(name)
        except CredentialsUnavailable as e:
            if e.cause is not None and e.cause.needs_input:
                # A role waiting for input (an MFA code) does not hold start-up.
                log.info("role %s: serving EC2's error document until the input arrives", name)
                continue
            if required:
                raise
            log.warning("role %s has no credentials; serving the error document: %s", name, e.cause or e)
            continue
        log.info("role %s ready: key=%s", name, creds.key_suffix)


async def open_listener(
    config: Config,
    engine: CredentialEngine,
    listener: Listener,
    *,
    tokens: TokenIssuer,
    refresher: bool,
) -> tuple[web.AppRunner, Listener]:
    """Start one listener's app (IMDS for its role, plus the container route); returns its
    runner (for cleanup) and the listener as bound (the real port when 0 was asked)."""
    role = config.listener_role(listener)
    app = create_app(config, engine, tokens=tokens, role=role, background_refresh=refresher)
    runner = web.AppRunner(app, access_log=None, handle_signals=False)
    await runner.setup()
    try:
        bound = await _bind(runner, listener)
    except BaseException:
        await runner.cleanup()
        raise
    return runner, bound


async def serve(
    config: Config,
    engine: CredentialEngine,
    on_ready: OnReady | None = None,
    services: Sequence[contextlib.AbstractAsyncContextManager[Any]] = (),
    *,
    require_credentials: bool = True,
) -> None:
    """Prime credentials, start `services` (control socket, MFA watcher), bind every listener,
    report ready, run until SIGTERM/SIGINT.

    Raises CredentialsUnavailable when the first credentials cannot be had, ListenError
    when a listener cannot be bound; nothing is served in either case (with
    require_credentials=False, see prime()). The container token must be loaded already
    (channel.resolve).
    """
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    tokens = TokenIssuer(time.time)
    runners: list[web.AppRunner] = []
    started = contextlib.AsyncExitStack()
    try:
        await prime(engine, required=require_credentials)
        for service in services:
            await started.enter_async_context(service)
        bound: list[Listener] = []
        for i, listener in enumerate(config.listeners):
            # One app per listener, as each serves one role; the first runs the refresher.
            runner, where = await open_listener(config, engine, listener, tokens=tokens, refresher=i == 0)
            runners.append(runner)
            bound.append(where)
            log.info("serving IMDS for role %s on %s", config.listener_role(listener), where.url)
            if config.container.enabled:
                log.info(
                    "serving container credentials on %s%s (token from %s)",
                    where.url.rstrip("/"),
                    channel.PATH,
                    config.container.token_file or "the configuration",
                )
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
