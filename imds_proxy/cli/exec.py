"""`imds-proxy exec`: serve one role privately while a command runs (runtime.exec_runner does
it). `exec --sandbox` is cli.sandbox's."""

from __future__ import annotations

import argparse
import asyncio
import os
import sys

from imds_proxy.aws.sts import ClientFactory, default_client
from imds_proxy.cli.common import cannot_serve, cli_values, load_config, pick_role
from imds_proxy.cli.serve import make_sources
from imds_proxy.config import Config
from imds_proxy.errors import CommandNotRunnable, ConfigError, CredentialsUnavailable
from imds_proxy.runtime import logs, shellenv


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
    from imds_proxy.runtime import exec_runner as execute

    # exec shares the terminal with the command: warnings only, unless --log-level says.
    logs.setup(cfg.log_format, "WARNING" if quiet else cfg.log_level)
    for path in shellenv.shadowing_files(os.environ):
        print(
            f"imds-proxy: warning: the default profile in {path} has credentials, and SDKs use "
            "them before ours; remove them or point AWS_SHARED_CREDENTIALS_FILE/AWS_CONFIG_FILE elsewhere",
            file=sys.stderr,
        )
    sources, _ = make_sources(cfg, client_factory)
    try:
        return asyncio.run(execute.run(cfg, sources, role, command, environ=os.environ, extra_env=extra_env))
    except CredentialsUnavailable as e:
        return cannot_serve(e)
    except CommandNotRunnable as e:
        print(f"imds-proxy: {e}", file=sys.stderr)
        return e.exit_code


def region_env(cfg: Config, role: str) -> dict[str, str]:
    """The role's region (from its profile or the config) for the child: AWS_REGION for the JS,
    Go and Java SDKs, AWS_DEFAULT_REGION for botocore and the AWS CLI. None set: none given."""
    region = cfg.roles[role].region
    return {"AWS_REGION": region, "AWS_DEFAULT_REGION": region} if region else {}


def cmd_exec(args: argparse.Namespace) -> int:
    command = command_of(args)
    quiet = args.log_level is None
    cfg = load_config(args, cli_values(args))
    role = pick_role(cfg, args.role)
    return run_exec(cfg, role, command, quiet=quiet, extra_env=region_env(cfg, role))
