"""Command line: sub-commands build Config and Source, run the daemon, print errors, set exit codes."""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import os
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from imds_proxy import __version__, config, logs
from imds_proxy.config import Config, Listener, RoleSpec
from imds_proxy.credentials import Source, utc_now
from imds_proxy.errors import ConfigError, CredentialsUnavailable, ImdsProxyError
from imds_proxy.refresh import CredentialEngine
from imds_proxy.sts import AssumeRoleSource, ClientFactory, default_client

EXIT_CONFIG = 2
EXIT_FAILURE = 1

#: CLI option → config key, for options shared by serve and sandbox.
_COMMON = {
    "--listen": ("listen", "HOST:PORT to serve IMDS on; repeatable (default 127.0.0.1:8169)"),
    "--role-session-name": ("role_session_name", "RoleSessionName (default imds-proxy-<host>)"),
    "--duration": ("duration", "session duration in seconds, 900-43200 (default 3600)"),
    "--refresh-ahead": (
        "refresh_ahead",
        "served credentials keep at least this many seconds (default 1800, at most half the duration)",
    ),
    "--imdsv1": ("imdsv1", "enabled|disabled: serve GETs without a token (default disabled)"),
    "--instance-id": ("instance_id", "instance id to report (default derived from host and role)"),
    "--availability-zone": ("availability_zone", "AZ to report: the region plus one letter"),
    "--instance-type": ("instance_type", "instance type to report (default t3.micro)"),
    "--log-format": ("log_format", "text|json (default text)"),
    "--log-level": ("log_level", "debug|info|warning|error (default info)"),
}
_SERVE = {
    "--role-arn": ("role_arn", "the role to assume and serve"),
    "--external-id": ("external_id", "ExternalId for AssumeRole"),
    "--region": ("region", "STS region (regional endpoint) and the region IMDS reports"),
    "--source-profile": (
        "source_profile",
        "~/.aws/config profile our own credentials for STS come from (default: boto3's chain)",
    ),
    "--sts-endpoint-url": ("sts_endpoint_url", "STS endpoint URL (e.g. a VPC endpoint)"),
}


def _add(parser: argparse.ArgumentParser, options: dict[str, tuple[str, str]]) -> None:
    for flag, (key, help_text) in options.items():
        parser.add_argument(flag, dest=key, action="append" if key == "listen" else "store", help=help_text)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="imds-proxy",
        description="Serve an IAM role's credentials to unmodified AWS SDKs over IMDSv2.",
    )
    parser.add_argument("--version", action="version", version=f"imds-proxy {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    serve = sub.add_parser("serve", help="assume a role through STS and serve it over IMDSv2")
    serve.add_argument("--config", type=Path, help="TOML config file (same keys as the options)")
    _add(serve, _SERVE)
    _add(serve, _COMMON)
    serve.set_defaults(func=cmd_serve)

    sandbox = sub.add_parser(
        "sandbox",
        help="run a local AWS (moto, IAM enforced) built from a scenario and serve its role",
        description="Run a local AWS (moto) built from a scenario, with IAM enforced, and serve the "
        "scenario's role over IMDSv2. Prints export lines on standard output.",
    )
    sandbox.add_argument(
        "--scenario",
        default="photos",
        metavar="NAME|FILE",
        help="a built-in scenario (see --list-scenarios; default photos) or a scenario .toml file",
    )
    sandbox.add_argument("--variant", help="a variant of the scenario (see --list-scenarios)")
    sandbox.add_argument("--list-scenarios", action="store_true", help="list the built-in scenarios and exit")
    sandbox.add_argument(
        "--served-lifetime",
        type=int,
        metavar="SECONDS",
        help="cap the Expiration served to this many seconds after issue, and rotate to new keys "
        "on that cadence (to watch SDKs near expiry)",
    )
    sandbox.add_argument(
        "--aws-port", type=int, default=0, help="port of the local AWS (default: a free one)"
    )
    _add(sandbox, _COMMON)
    sandbox.set_defaults(func=cmd_sandbox)
    return parser


def _cli_values(args: argparse.Namespace) -> dict[str, Any]:
    return {k: getattr(args, k) for k in config.KEYS if getattr(args, k, None) is not None}


def run_daemon(
    cfg: Config,
    client_factory: ClientFactory = default_client,
    on_ready: Callable[[list[Listener]], None] | None = None,
    *,
    wrap_source: Callable[[Source], Source] | None = None,
    prime: bool = True,
) -> int:
    """Set up logging, build the engine for cfg's role, run the daemon until stopped.
    `wrap_source` and `prime=False` are the sandbox's (served lifetime; serve a denied role)."""
    from imds_proxy import daemon

    logs.setup(cfg.log_format, cfg.log_level)
    source: Source = AssumeRoleSource(cfg.role, utc_now, client_factory)
    if wrap_source is not None:
        source = wrap_source(source)
    engine = CredentialEngine({cfg.role.name: source}, cfg.refresh, utc_now)
    try:
        asyncio.run(daemon.serve(cfg, engine, on_ready, prime=prime))
    except CredentialsUnavailable as e:
        cause = e.cause if e.cause is not None else e
        print(f"imds-proxy: cannot serve role {cfg.role.name}: {cause}", file=sys.stderr)
        return EXIT_FAILURE
    return 0


def cmd_serve(args: argparse.Namespace) -> int:
    cfg = config.load(_cli_values(args), os.environ, args.config)
    return run_daemon(cfg)


def cmd_sandbox(args: argparse.Namespace) -> int:
    from imds_proxy import scenarios, served_lifetime

    if args.list_scenarios:
        print(scenarios.catalogue())
        return 0
    # Validate everything before starting anything.
    scenario = scenarios.load(args.scenario, args.variant)
    values = config.merge(config.read_env(os.environ), _cli_values(args))
    values.update(role_arn=scenario.role.arn, region=scenario.region)
    values.pop("sts_endpoint_url", None)
    cfg = config.build(values)
    lifetime = None
    if args.served_lifetime is not None:
        lifetime = served_lifetime.checked(args.served_lifetime, cfg.role.duration)
        cfg = dataclasses.replace(cfg, refresh=served_lifetime.policy_for(cfg.refresh, lifetime))

    from imds_proxy import sandbox

    # Log from the start: the local AWS logs while the scenario is built.
    logs.setup(cfg.log_format, cfg.log_level)
    aws = sandbox.LocalAws(port=args.aws_port).start()
    try:
        world = sandbox.build(aws, scenario)
        aws.enforce_iam()
        watched: list[sandbox.Watched] = []

        def wrap(source: Source) -> Source:
            if lifetime is not None:
                source = served_lifetime.ServedLifetime(source, lifetime, utc_now)
            watched.append(sandbox.Watched(source))
            return watched[0]

        def ready(bound: list[Listener]) -> None:
            print(sandbox.exports(bound[0].url, aws.url, scenario.region), flush=True)
            rotation = None
            if lifetime is not None:
                rotation = (lifetime, served_lifetime.rotation_period(lifetime, cfg.refresh))
            text = sandbox.summary(
                world, bound[0].url, aws.url, cfg.role.session_name, watched[0].error, rotation
            )
            print(text, file=sys.stderr, flush=True)

        def sts_client(_spec: RoleSpec) -> Any:
            return aws.client("sts", keys=world.caller_key, region=scenario.region)

        prime = scenario.if_denied == "exit"
        return run_daemon(cfg, sts_client, ready, wrap_source=wrap, prime=prime)
    finally:
        aws.stop()


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        code: int = args.func(args)
    except ConfigError as e:
        print(f"imds-proxy: {e}", file=sys.stderr)
        return EXIT_CONFIG
    except ImdsProxyError as e:
        print(f"imds-proxy: {e}", file=sys.stderr)
        return EXIT_FAILURE
    except KeyboardInterrupt:
        return 130
    return code
