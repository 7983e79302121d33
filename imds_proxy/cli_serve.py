"""`imds-proxy serve`, and what every command that serves credentials shares with it: option
values as config keys, the chosen role, the engine over each role's STS source, and the daemon
with its control socket and MFA watcher."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import sys
from collections.abc import Callable
from typing import Any

from imds_proxy import channel, config, control_socket, logs, mfa, profiles
from imds_proxy.config import Config
from imds_proxy.controller import Controller
from imds_proxy.credentials import Credentials, Source, utc_now
from imds_proxy.errors import ConfigError, CredentialsUnavailable
from imds_proxy.listeners import Listener
from imds_proxy.refresh import CredentialEngine
from imds_proxy.sts import ClientFactory, build_sources, default_client

EXIT_CONFIG = 2
EXIT_FAILURE = 1


def cli_values(args: argparse.Namespace) -> dict[str, Any]:
    """The config keys given as options (argparse's dest is the key)."""
    return {k: getattr(args, k) for k in config.KEYS if getattr(args, k, None) is not None}


def pick_role(cfg: Config, name: str | None) -> str:
    """The configured role `--role` names, else the first."""
    if name is None:
        return next(iter(cfg.roles))
    if name not in cfg.roles:
        raise ConfigError("role", f"{name!r} is not configured", f"use one of: {', '.join(cfg.roles)}")
    return name


def cannot_serve(e: CredentialsUnavailable) -> int:
    """Say why a role cannot be served (the source's error, not the engine's wrapper); exit 1."""
    cause = e.cause if e.cause is not None else e
    print(f"imds-proxy: cannot serve role {e.role}: {cause}", file=sys.stderr)
    return EXIT_FAILURE


def make_engine(
    cfg: Config,
    client_factory: ClientFactory,
    wrap_source: Callable[[Source], Source] | None = None,
) -> tuple[CredentialEngine, dict[str, mfa.MfaSession]]:
    """The engine over a source for every configured role, and the roles' MFA sessions."""

    async def role_credentials(name: str) -> Credentials:  # for roles chained off another
        return await engine.get(name)

    built, mfa_sessions = build_sources(cfg, utc_now, client_factory, role_credentials)
    sources: dict[str, Source] = dict(built)
    if wrap_source is not None:
        sources = {name: wrap_source(source) for name, source in sources.items()}
    engine = CredentialEngine(sources, cfg.refresh, utc_now)
    return engine, mfa_sessions


def run_daemon(
    cfg: Config,
    client_factory: ClientFactory = default_client,
    on_ready: Callable[[list[Listener]], None] | None = None,
    *,
    wrap_source: Callable[[Source], Source] | None = None,
    require_credentials: bool = True,
) -> int:
    """Set up logging, build the engine for cfg's role, run the daemon until stopped.
    `wrap_source` and `require_credentials=False` are the sandbox's (served lifetime; serve
    a denied role)."""
    from imds_proxy import daemon

    cfg = channel.resolve(cfg)  # load or generate the container token before anything runs
    logs.setup(cfg.log_format, cfg.log_level)

    engine, mfa_sessions = make_engine(cfg, client_factory, wrap_source)
    controller = Controller(cfg, engine, mfa_sessions, utc_now)
    notify = mfa.command_notifier(cfg.notify_command) if cfg.notify_command else None
    services: list[contextlib.AbstractAsyncContextManager[Any]] = [
        control_socket.ControlServer(
            cfg.control_socket or control_socket.default_path(),
            controller.handle,
            required=cfg.control_socket is not None or bool(mfa_sessions),
        ),
        mfa.MfaWatcher(list({id(s): s for s in mfa_sessions.values()}.values()), utc_now, notify),
    ]
    try:
        asyncio.run(daemon.serve(cfg, engine, on_ready, services, require_credentials=require_credentials))
    except CredentialsUnavailable as e:
        return cannot_serve(e)
    return 0


def cmd_serve(args: argparse.Namespace) -> int:
    cfg = config.load(cli_values(args), os.environ, args.config, profiles.read_profile)
    return run_daemon(cfg)
