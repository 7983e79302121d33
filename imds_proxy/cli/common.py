"""What the sub-commands share: exit codes, option values as config keys, the chosen role, and
the one line that says why a role cannot be served."""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Mapping
from typing import Any

from imds_proxy import config
from imds_proxy.config import Config
from imds_proxy.config.listeners import Listener
from imds_proxy.errors import ConfigError, CredentialsUnavailable

EXIT_CONFIG = 2
EXIT_FAILURE = 1


def read_profile(name: str) -> Mapping[str, Any]:
    """A ~/.aws/config profile, botocore imported only when a role names one: `healthcheck`
    (Docker runs it every 30 s) and `env` import neither boto3 nor aiohttp otherwise."""
    from imds_proxy.aws import profiles

    return profiles.read_profile(name)


def load_config(
    args: argparse.Namespace, cli: Mapping[str, Any] | None = None, inherited: tuple[Listener, ...] = ()
) -> Config:
    """The config `--config`, the environment and `cli` give (profiles read when named);
    `inherited`: listeners on sockets from systemd (serve and sandbox only)."""
    return config.load(cli or {}, os.environ, getattr(args, "config", None), read_profile, inherited)


def daemon_config(args: argparse.Namespace) -> Config:
    """The running daemon's config, for commands that talk to it (env, healthcheck): they take
    no --role-arn, so a missing role means they were not told where that config is."""
    try:
        return load_config(args)
    except ConfigError as e:
        if e.key != "role_arn" or getattr(args, "config", None) is not None:
            raise
        raise ConfigError(
            "config",
            "no daemon configuration to read (it names no role)",
            "pass --config with the daemon's config file (or set IMDS_PROXY_CONFIG)",
        ) from None


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
