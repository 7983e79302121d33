"""The process shell: AppRunner and sites, readiness (sd_notify), SIGTERM/SIGINT."""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import socket
from collections.abc import Callable

from aiohttp import web

from imds_proxy.app import create_app
from imds_proxy.config import Config, Listener
from imds_proxy.errors import CredentialsUnavailable, ListenError
from imds_proxy.refresh import CredentialEngine

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
    before = set(map(tuple, runner.addresses))
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
    new = [a for a in map(tuple, runner.addresses) if a not in before]
    return Listener(listener.host, int(new[0][1]) if new else listener.port)


async def serve(
    config: Config, engine: CredentialEngine, on_ready: OnReady | None = None, *, prime: bool = True
) -> None:
    """Prime credentials, bind every listener, report ready, run until SIGTERM/SIGINT.

    Raises CredentialsUnavailable when the first credentials cannot be had, ListenError
    when a listener cannot be bound; nothing is served in either case. With prime=False a role
    without credentials is logged and served anyway: its credentials path answers EC2's error
    document until the source recovers (what EC2 does for a role it cannot assume).
    """
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    app = create_app(config, engine)
    runner = web.AppRunner(app, access_log=None, handle_signals=False)
    await runner.setup()
    try:
        for name in engine.role_names:
            try:
                creds = await engine.get(name)
            except CredentialsUnavailable as e:
                if prime:
                    raise
                log.warning("role %s has no credentials; serving the error document: %s", name, e.cause or e)
                continue
            log.info("role %s ready: key=%s", name, creds.key_suffix)
        bound = [await _bind(runner, listener) for listener in config.listeners]
        for listener in bound:
            log.info("serving IMDS for role %s on %s", config.role.name, listener.url)
        if on_ready:
            on_ready(bound)
        sd_notify("READY=1")
        await stop.wait()
        log.info("stopping")
        sd_notify("STOPPING=1")
    finally:
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.remove_signal_handler(sig)
        await runner.cleanup()
