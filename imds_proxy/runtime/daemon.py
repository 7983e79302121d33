"""The daemon: it owns the one credential engine (builds, primes, refreshes, stops it), turns
each listener into an app on its own site, reports readiness (sd_notify), stops on SIGTERM/SIGINT."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import socket
import time
from collections.abc import Callable, Mapping
from typing import Any

from aiohttp import web

from imds_proxy.config import Config
from imds_proxy.config.container import PATH
from imds_proxy.config.listeners import Listener
from imds_proxy.engine.credentials import Source, utc_now
from imds_proxy.engine.mfa import MfaSession
from imds_proxy.engine.policy import RefreshPolicy
from imds_proxy.engine.refresh import CredentialEngine
from imds_proxy.engine.tokens import TokenIssuer
from imds_proxy.errors import CredentialsUnavailable, ListenError
from imds_proxy.runtime import connections, control_socket
from imds_proxy.runtime.control_socket import ControlServer
from imds_proxy.runtime.controller import Controller
from imds_proxy.runtime.mfa_watcher import MfaWatcher, command_notifier, wake_on_open
from imds_proxy.server.app import create_app

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
    site = web.TCPSite(runner, listener.host, listener.port, reuse_address=True, backlog=connections.BACKLOG)
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
            creds = await engine.get(name, patient=True)
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
    cap: int = connections.MAX_CONNECTIONS,
) -> tuple[web.AppRunner, Listener]:
    """Start one listener's app, holding at most `cap` connections; returns its runner (for
    cleanup) and the listener as bound (the real port when 0 was asked)."""
    app = create_app(config, engine, listener, tokens=tokens)
    runner = connections.runner(app)
    await runner.setup()
    assert runner.server is not None  # set up
    connections.cap_connections(runner.server, cap)
    try:
        bound = await _bind(runner, listener)
    except BaseException:
        await runner.cleanup()
        raise
    return runner, bound


def build_engine(
    config: Config, sources: Mapping[str, Source], policy: RefreshPolicy | None = None
) -> CredentialEngine:
    """The one engine of a daemon (or of exec) over every role's source."""
    return CredentialEngine(sources, policy or RefreshPolicy.of(config), utc_now)


def _services(
    config: Config, engine: CredentialEngine, mfa_sessions: Mapping[str, MfaSession]
) -> list[contextlib.AbstractAsyncContextManager[Any]]:
    """What runs beside the listeners: the control socket, and the MFA watcher."""
    controller = Controller(config, engine, mfa_sessions, utc_now)
    notify = command_notifier(config.notify_command) if config.notify_command else None
    return [
        ControlServer(
            config.control_socket or control_socket.default_path(),
            controller.handle,
            required=config.control_socket is not None or bool(mfa_sessions),
        ),
        MfaWatcher(list({id(s): s for s in mfa_sessions.values()}.values()), utc_now, notify),
    ]


async def serve(
    config: Config,
    sources: Mapping[str, Source],
    *,
    mfa_sessions: Mapping[str, MfaSession] | None = None,
    policy: RefreshPolicy | None = None,
    on_ready: OnReady | None = None,
    require_credentials: bool = True,
) -> None:
    """Build the engine over `sources` and own it: prime it, start the services (control
    socket, MFA watcher), bind every listener (one app each, all handed the engine), report
    ready, run its refresh until SIGTERM/SIGINT, and stop it.

    Raises CredentialsUnavailable when the first credentials cannot be had, ListenError
    when a listener cannot be bound; nothing is served in either case (with
    require_credentials=False, see prime()).
    """
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    loop.set_exception_handler(connections.AcceptErrors())
    nofile = connections.raise_nofile_limit()
    cap = connections.connection_cap(nofile, len(config.listeners))
    log.debug("open-file limit %d: at most %d connections per listener", nofile, cap)
    engine = build_engine(config, sources, policy)
    wake_on_open({id(s): s for s in (mfa_sessions or {}).values()}.values(), engine)
    tokens = TokenIssuer(time.time)
    runners: list[web.AppRunner] = []
    try:
        async with contextlib.AsyncExitStack() as started:
            await prime(engine, required=require_credentials)
            await started.enter_async_context(engine.running())
            for service in _services(config, engine, mfa_sessions or {}):
                await started.enter_async_context(service)
            bound: list[Listener] = []
            for listener in config.listeners:
                runner, where = await open_listener(config, engine, listener, tokens=tokens, cap=cap)
                runners.append(runner)
                bound.append(where)
                _log_listener(config, where)
            if on_ready:
                on_ready(bound)
            sd_notify("READY=1")
            await stop.wait()
            log.info("stopping")
            sd_notify("STOPPING=1")
            for runner in runners:
                await runner.cleanup()
            runners.clear()
    finally:
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.remove_signal_handler(sig)
        for runner in runners:
            await runner.cleanup()


def _log_listener(config: Config, where: Listener) -> None:
    if "imds" in where.channels:
        log.info("serving IMDS for role %s on %s", config.listener_role(where), where.url)
    if "container" in where.channels:
        log.info(
            "serving container credentials on %s%s (token from %s)",
            where.url.rstrip("/"),
            PATH,
            config.container.token_file or "the configuration",
        )
