"""`imds-proxy exec`: the command line around execute (serve one role privately while a command
runs). `exec --sandbox` is cli_sandbox's."""

from __future__ import annotations

import argparse
import asyncio
import os
import sys

from imds_proxy import config, logs, profiles, shellenv
from imds_proxy.cli_serve import cannot_serve, cli_values, make_engine, pick_role
from imds_proxy.config import Config
from imds_proxy.errors import CommandNotRunnable, ConfigError, CredentialsUnavailable
from imds_proxy.sts import ClientFactory, default_client


def command_of(args: argparse.Namespace) -> list[str]:
    """The command to run, after `--`."""
    command = list(args.command)
    if command[:1] == ["--"]:
        command = command[1:]
    if not command:
        raise ConfigError("command", "nothing to run", "write imds-proxy exec [OPTIONS] -- COMMAND [ARGS...]")
    return command


def run_exec(
    cfg: Config,
    role: str,
    command: list[str],
    *,
    quiet: bool,
    client_factory: ClientFactory = default_client,
    extra_env: dict[str, str] | None = None,
) -> int:
    """Serve `role` privately while `command` runs; its exit code."""
    from imds_proxy import execute

    # exec shares the terminal with the command: warnings only, unless --log-level says.
    logs.setup(cfg.log_format, "WARNING" if quiet else cfg.log_level)
    for path in shellenv.shadowing_files(os.environ):
        print(
            f"imds-proxy: warning: the default profile in {path} has credentials, and SDKs use "
            "them before ours; remove them or point AWS_SHARED_CREDENTIALS_FILE/AWS_CONFIG_FILE elsewhere",
            file=sys.stderr,
        )
    engine, _ = make_engine(cfg, client_factory)
    try:
        return asyncio.run(execute.run(cfg, engine, role, command, environ=os.environ, extra_env=extra_env))
    except CredentialsUnavailable as e:
        return cannot_serve(e)
    except CommandNotRunnable as e:
        print(f"imds-proxy: {e}", file=sys.stderr)
        return e.exit_code


def cmd_exec(args: argparse.Namespace) -> int:
    command = command_of(args)
    quiet = args.log_level is None
    cfg = config.load(cli_values(args), os.environ, args.config, profiles.read_profile)
    return run_exec(cfg, pick_role(cfg, args.role), command, quiet=quiet)
