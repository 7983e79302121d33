"""`imds-proxy serve`, and what every command that serves credentials shares with it: a source
per role over STS, handed to the daemon that owns the engine."""

from __future__ import annotations

import argparse
import asyncio
import os
import socket
from collections.abc import Callable

from imds_proxy.aws.sts import ClientFactory, build_sources, default_client
from imds_proxy.cli.common import cannot_serve, cli_values, load_config
from imds_proxy.config import Config
from imds_proxy.config.listeners import Listener
from imds_proxy.engine.credentials import Source, utc_now
from imds_proxy.engine.mfa import MfaSession
from imds_proxy.engine.policy import RefreshPolicy
from imds_proxy.errors import CredentialsUnavailable
from imds_proxy.runtime import activation, logs

#: Wraps every role's source (the sandbox's: served lifetime, watching for denials).
WrapSources = Callable[[dict[str, Source]], dict[str, Source]]


def make_sources(
    cfg: Config, client_factory: ClientFactory, wrap: WrapSources | None = None
) -> tuple[dict[str, Source], dict[str, MfaSession]]:
    """A source for every configured role, and the roles' MFA sessions."""
    built, mfa_sessions = build_sources(cfg, utc_now, client_factory)
    sources: dict[str, Source] = dict(built)
    return (wrap(sources) if wrap is not None else sources), mfa_sessions


def run_daemon(
    cfg: Config,
    client_factory: ClientFactory = default_client,
    on_ready: Callable[[list[Listener]], None] | None = None,
    *,
    wrap_sources: WrapSources | None = None,
    policy: RefreshPolicy | None = None,
    require_credentials: bool = True,
    reconfigure: Callable[[], Config] | None = None,
    sockets: list[socket.socket] | None = None,
) -> int:
    """Set up logging and run the daemon over cfg's roles until stopped. `wrap_sources`,
    `policy`, `require_credentials=False` and `sockets` (the listeners', bound already) are the
    sandbox's (served lifetime; serve a denied role); `reconfigure` reads the config again for
    a reload (SIGHUP)."""
    from imds_proxy.runtime import daemon

    logs.setup(cfg.log_format, cfg.log_level)
    sources, mfa_sessions = make_sources(cfg, client_factory, wrap_sources)

    def reload() -> tuple[Config, dict[str, Source]]:
        assert reconfigure is not None
        new = reconfigure()
        return new, make_sources(new, client_factory, wrap_sources)[0]

    try:
        asyncio.run(
            daemon.serve(
                cfg,
                sources,
                mfa_sessions=mfa_sessions,
                policy=policy,
                on_ready=on_ready,
                require_credentials=require_credentials,
                reload=reload if reconfigure is not None else None,
                sockets=sockets,
            )
        )
    except CredentialsUnavailable as e:
        return cannot_serve(e)
    return 0


def cmd_serve(args: argparse.Namespace) -> int:
    inherited = activation.take(os.environ)  # once: the variables are gone afterwards
    cfg = load_config(args, cli_values(args), inherited)
    return run_daemon(cfg, reconfigure=lambda: load_config(args, cli_values(args), inherited))
