"""The daemon: it owns the one credential engine (builds, primes, refreshes, stops it), turns
each listener into an app on its own site, reports readiness (sd_notify), stops on SIGTERM/SIGINT."""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
import os
import signal
import socket
import time
from collections.abc import Callable, Mapping

from imds_proxy.config import Config
from imds_proxy.config.container import PATH
from imds_proxy.config.listeners import Listener
from imds_proxy.engine.credentials import Source, utc_now
from imds_proxy.engine.mfa import MfaSession
from imds_proxy.engine.policy import RefreshPolicy
from imds_proxy.engine.refresh import CredentialEngine
from imds_proxy.engine.tokens import TokenIssuer
from imds_proxy.errors import CredentialsUnavailable, ImdsProxyError
from imds_proxy.runtime import audit, connections, control_socket, notify
from imds_proxy.runtime.admin_site import AdminSite
from imds_proxy.runtime.control_socket import ControlServer
from imds_proxy.runtime.controller import Controller
from imds_proxy.runtime.metrics import Metrics
from imds_proxy.runtime.mfa_watcher import MfaWatcher, command_notifier, wake_on_open
from imds_proxy.runtime.notify import sd_notify
from imds_proxy.runtime.reload import ListenerSet, Reloader, listen_socket, listener_sockets
from imds_proxy.server.app import create_app
from imds_proxy.server.site import Site

log = logging.getLogger("imds_proxy.daemon")

OnReady = Callable[[list[Listener]], None]


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
) -> tuple[Site, Listener]:
    """Start one listener's app, holding at most `cap` connections; returns its site (to
    close) and the listener as bound (the real port when 0 was asked)."""
    sock = listen_socket(listener)
    site = Site(create_app(config, engine, listener, tokens=tokens), cap=cap)
    try:
        port = await site.start(sock)
    except BaseException:
        sock.close()
        raise
    return site, listener.bound_to(port)


def build_engine(
    config: Config, sources: Mapping[str, Source], policy: RefreshPolicy | None = None
) -> CredentialEngine:
    """The one engine of a daemon (or of exec) over every role's source."""
    return CredentialEngine(sources, policy or RefreshPolicy.of(config), utc_now)


def _services(
    config: Config, engine: CredentialEngine, mfa_sessions: Mapping[str, MfaSession]
) -> tuple[ControlServer, MfaWatcher]:
    """What runs beside the listeners: the control socket, and the MFA watcher."""
    controller = Controller(config, engine, mfa_sessions, utc_now)
    notify = command_notifier(config.notify_command) if config.notify_command else None
    return (
        ControlServer(
            config.control_socket or control_socket.default_path(),
            controller.handle,
            required=config.control_socket is not None or bool(mfa_sessions),
        ),
        MfaWatcher(list({id(s): s for s in mfa_sessions.values()}.values()), utc_now, notify),
    )


async def serve(
    config: Config,
    sources: Mapping[str, Source],
    *,
    mfa_sessions: Mapping[str, MfaSession] | None = None,
    policy: RefreshPolicy | None = None,
    on_ready: OnReady | None = None,
    require_credentials: bool = True,
    reload: Reloader | None = None,
    sockets: list[socket.socket] | None = None,
) -> None:
    """Build the engine over `sources` and own it. First everything local: start the admin
    endpoint, bind every listener's socket (or take `sockets`, one per listener, bound by the
    caller), start the services (control socket, MFA watcher); then prime the engine, serve
    each listener's app (all handed the engine) on its socket, report ready, run its refresh
    until SIGTERM/SIGINT — reloading on SIGHUP with `reload` — and stop it, letting requests
    in flight finish.

    Raises ListenError or ControlError before any STS call when a socket cannot be had,
    CredentialsUnavailable when the first credentials cannot be had; nothing is served in
    either case (with require_credentials=False, see prime()).
    """
    stop = asyncio.Event()
    hup = asyncio.Event()
    loop = asyncio.get_running_loop()
    signals = {signal.SIGTERM: stop.set, signal.SIGINT: stop.set, signal.SIGHUP: hup.set}
    for sig, handler in signals.items():
        loop.add_signal_handler(sig, handler)
    loop.set_exception_handler(connections.AcceptErrors())
    nofile = connections.raise_nofile_limit()
    cap = connections.connection_cap(nofile, len(config.listeners))
    log.debug("open-file limit %d: at most %d connections per listener", nofile, cap)
    engine = build_engine(config, sources, policy)
    wake_on_open({id(s): s for s in (mfa_sessions or {}).values()}.values(), engine)
    metrics = Metrics(lambda: [engine.status(name) for name in engine.role_names])
    engine.observe(metrics)
    tokens = TokenIssuer(time.time)
    listeners = ListenerSet(
        lambda cfg, lst: create_app(cfg, engine, lst, tokens=tokens, observer=metrics), cap
    )
    current = config
    try:
        async with contextlib.AsyncExitStack() as started:
            started.enter_context(audit.queued())
            admin = AdminSite(config.admin, metrics.render, lambda: _unready(engine, listeners.bound))
            await started.enter_async_context(admin)
            # Local first: a busy port or an unusable control socket directory fails now,
            # before the first AssumeRole, not after it.
            waiting = list(sockets) if sockets is not None else listener_sockets(config.listeners)
            started.callback(_close, waiting)  # those no listener serves yet
            control, watcher = _services(config, engine, mfa_sessions or {})
            await started.enter_async_context(control)
            await started.enter_async_context(watcher)
            await prime(engine, required=require_credentials)
            await started.enter_async_context(engine.running())
            for listener in config.listeners:
                _log_listener(config, await listeners.start(config, listener, waiting[0]))
                waiting.pop(0)  # its runner closes it now
            if admin.url:
                log.info("admin endpoint on %s (/healthz /readyz /metrics)", admin.url)
            if control.listening:
                log.info("control socket %s", control.path)
            if on_ready:
                on_ready(listeners.bound)
            # What start-up built (modules, botocore's models, the config) lives as long as the
            # daemon: kept out of the cyclic collector's full passes, which would otherwise walk
            # it all (~15 ms, a pause every request in flight waits out) every few seconds of load.
            gc.freeze()
            sd_notify("READY=1")
            interval = notify.watchdog_interval(os.environ, os.getpid())
            if interval is not None:
                started.callback(asyncio.create_task(notify.keep_alive(interval)).cancel)
            while not stop.is_set():
                await _first(stop, hup)
                if hup.is_set() and not stop.is_set():
                    hup.clear()
                    current = await _reload(current, reload, engine, listeners)
            log.info("stopping")  # new connections refused; those in flight finish (bounded)
            sd_notify("STOPPING=1")
            await listeners.close_all()
    finally:
        for sig in signals:
            loop.remove_signal_handler(sig)
        await listeners.close_all()


def _close(sockets: list[socket.socket]) -> None:
    """Close the sockets bound for listeners that never started (start-up failed)."""
    for sock in sockets:
        sock.close()


async def _first(*events: asyncio.Event) -> None:
    """Wait until one of `events` is set."""
    waits = [asyncio.create_task(e.wait()) for e in events]
    try:
        await asyncio.wait(waits, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for w in waits:
            w.cancel()


async def _reload(
    current: Config, reload: Reloader | None, engine: CredentialEngine, listeners: ListenerSet
) -> Config:
    """SIGHUP: the next config, or the current one kept when the next cannot be had (one line)."""
    if reload is None:
        log.warning("reload: not supported here (SIGHUP ignored)")
        return current
    sd_notify(notify.reloading())
    try:
        new, sources = await asyncio.to_thread(reload)  # files, profiles, boto3 clients
        await listeners.reload(current, new, engine, sources)
    except (ImdsProxyError, ValueError) as e:
        log.error("reload refused, the running config stays: %s", e)
        return current
    finally:
        sd_notify("READY=1")
    log.info("reloaded: roles %s", ", ".join(engine.role_names))
    await prime(engine, required=False)  # added and changed roles fetched now, not at first request
    return new


def _unready(engine: CredentialEngine, bound: list[Listener]) -> str | None:
    """Why the daemon is not ready (every listener bound, every role with valid credentials)."""
    if not bound:
        return "the listeners are not bound yet"
    for name in engine.role_names:
        if engine.cached(name) is None:
            status = engine.status(name)
            why = f": {status.last_error}" if status.last_error else ""
            return f"role {name} holds no valid credentials{why}"
    return None


def _log_listener(config: Config, where: Listener) -> None:
    if "imds" in where.channels:
        log.info("serving IMDS for role %s on %s%s", config.listener_role(where), where.url, where.origin)
    if "container" in where.channels:
        log.info(
            "serving container credentials on %s%s (token from %s)",
            where.url.rstrip("/"),
            PATH,
            config.container.token_file or "the configuration",
        )
