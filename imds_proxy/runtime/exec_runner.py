"""exec's runner: one command run with a role's credentials from a private container endpoint
(an ephemeral loopback port, a fresh token), signals forwarded, its exit code returned."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import os
import signal
import time
from collections.abc import Mapping, Sequence

from imds_proxy.config import Config
from imds_proxy.config.clients import ClientMap
from imds_proxy.config.container import ContainerSettings, credentials_url, new_token
from imds_proxy.config.listeners import Listener
from imds_proxy.engine.credentials import Source
from imds_proxy.engine.tokens import TokenIssuer
from imds_proxy.errors import CommandNotRunnable
from imds_proxy.runtime import daemon, shellenv
from imds_proxy.runtime.reload import DRAIN_SECONDS

log = logging.getLogger("imds_proxy.execute")

#: What a supervisor or a terminal sends to stop or reload a program; all reach the child.
FORWARDED = (signal.SIGTERM, signal.SIGINT, signal.SIGHUP)
#: The shell's codes for "not found" and "found but not executable".
EXIT_NOT_FOUND, EXIT_NOT_EXECUTABLE = 127, 126


def private_config(config: Config, role: str, token: str) -> Config:
    """Only the child's listener: loopback, a port the kernel picks, the role, both channels,
    the token, no client map."""
    return dataclasses.replace(
        config,
        listeners=(Listener("127.0.0.1", 0, role, channels=("imds", "container")),),
        container=ContainerSettings(token=token),
        clients=ClientMap(),
    )


def _terminal_sent_it() -> bool:
    """Whether we run in the terminal's foreground process group. Then a Ctrl-C reached
    the child as well (same group), and forwarding it would deliver it twice."""
    for fd in (0, 1, 2):
        with contextlib.suppress(OSError):
            if os.isatty(fd):
                return os.tcgetpgrp(fd) == os.getpgrp()
    return False


async def run_child(argv: Sequence[str], env: Mapping[str, str]) -> int:
    """Run argv to completion with env, forwarding FORWARDED signals; its exit code, or
    128 + N when a signal N ended it (as shells report it)."""
    try:
        proc = await asyncio.create_subprocess_exec(*argv, env=dict(env))
    except FileNotFoundError:
        raise CommandNotRunnable(f"cannot run {argv[0]}: command not found", EXIT_NOT_FOUND) from None
    except PermissionError:
        raise CommandNotRunnable(f"cannot run {argv[0]}: permission denied", EXIT_NOT_EXECUTABLE) from None
    except OSError as e:
        raise CommandNotRunnable(f"cannot run {argv[0]}: {e.strerror}", EXIT_NOT_EXECUTABLE) from None

    def forward(sig: signal.Signals) -> None:
        if sig == signal.SIGINT and _terminal_sent_it():
            return
        log.debug("forwarding %s to pid %d", sig.name, proc.pid)
        with contextlib.suppress(ProcessLookupError):
            proc.send_signal(sig)

    loop = asyncio.get_running_loop()
    for sig in FORWARDED:
        loop.add_signal_handler(sig, forward, sig)
    try:
        code = await proc.wait()
    finally:
        for sig in FORWARDED:
            loop.remove_signal_handler(sig)
    return code if code >= 0 else 128 - code


async def run(
    config: Config,
    sources: Mapping[str, Source],
    role: str,
    argv: Sequence[str],
    *,
    environ: Mapping[str, str],
    extra_env: Mapping[str, str] | None = None,
) -> int:
    """Serve `role` on a private listener, from an engine of our own over `sources`, while
    argv runs with it. Raises CredentialsUnavailable (before the command starts) or
    CommandNotRunnable."""
    token = new_token()
    private = private_config(config, role, token)
    engine = daemon.build_engine(private, sources)
    await daemon.prime(engine)
    async with engine.running():
        site, bound = await daemon.open_listener(
            private, engine, private.listeners[0], tokens=TokenIssuer(time.time)
        )
        try:
            url = credentials_url(bound)
            change = shellenv.container_change(url, token=token, imds_url=bound.url)
            env = change.apply(environ)
            env.update(extra_env or {})
            log.info("running %s with role %s from %s", argv[0], role, url)
            return await run_child(argv, env)
        finally:
            await site.close(DRAIN_SECONDS)
