"""Command line: sub-commands build Config and Source, run the daemon, print errors, set exit codes."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from imds_proxy import __version__, config, control, logs, mfa, profiles
from imds_proxy.config import Config, Listener
from imds_proxy.credentials import Credentials, utc_now
from imds_proxy.errors import ConfigError, ControlError, CredentialsUnavailable, ImdsProxyError
from imds_proxy.refresh import CredentialEngine
from imds_proxy.sts import ClientFactory, build_sources, default_client

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
#: Roles from ~/.aws/config, the full AssumeRole surface, web identity and MFA.
_ROLE_OPTIONS = {
    "--profile": ("profile", "take the role and its source from this ~/.aws/config profile"),
    "--credential-source": ("credential_source", "Environment|Ec2InstanceMetadata|EcsContainer"),
    "--web-identity-token-file": (
        "web_identity_token_file",
        "assume the role with this OIDC token (re-read at every refresh)",
    ),
    "--policy": ("policy", "session policy (JSON)"),
    "--policy-file": ("policy_file", "file holding the session policy"),
    "--policy-arn": ("policy_arns", "managed session policy ARN; repeatable"),
    "--tag": ("tags", "session tag KEY=VALUE; repeatable"),
    "--transitive-tag-key": ("transitive_tag_keys", "tag key that survives role chaining; repeatable"),
    "--source-identity": ("source_identity", "SourceIdentity for AssumeRole"),
    "--mfa-serial": ("mfa_serial", "MFA device ARN; codes come from `imds-proxy mfa` or --mfa-process"),
    "--mfa-process": ("mfa_process", "command that prints an MFA code (e.g. a password manager)"),
    "--mfa-duration": ("mfa_duration", "MFA session length in seconds, 900-129600 (default 43200)"),
    "--mfa-warn-ahead": ("mfa_warn_ahead", "warn this many seconds before an MFA session ends (1800)"),
    "--notify-command": ("notify_command", "command run with a message when an MFA session is ending"),
    "--control-socket": ("control_socket", "control socket path (default $XDG_RUNTIME_DIR/imds-proxy/)"),
}


def _add(parser: argparse.ArgumentParser, options: dict[str, tuple[str, str]]) -> None:
    for flag, (key, help_text) in options.items():
        action = "append" if key in config.LIST_KEYS else "store"
        parser.add_argument(flag, dest=key, action=action, help=help_text)


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
    _add(serve, _ROLE_OPTIONS)
    _add(serve, _COMMON)
    serve.set_defaults(func=cmd_serve)

    mfa_cmd = sub.add_parser("mfa", help="give the running daemon an MFA code (prompts for it)")
    mfa_cmd.add_argument("--role", help="the role that needs the code (default: the only MFA role)")
    roles_cmd = sub.add_parser("roles", help="list the running daemon's roles, credentials and errors")
    roles_cmd.add_argument("--json", action="store_true", help="print JSON")
    for cmd in (mfa_cmd, roles_cmd):
        cmd.add_argument("--control-socket", type=Path, help="the daemon's control socket")
        cmd.add_argument("--config", type=Path, help="the daemon's config file (for its control_socket)")
    mfa_cmd.set_defaults(func=cmd_mfa)
    roles_cmd.set_defaults(func=cmd_roles)

    sandbox = sub.add_parser("sandbox", help="run a local AWS (moto) with a role in it and serve that role")
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
) -> int:
    """Set up logging, build the engine for cfg's role, run the daemon until stopped."""
    from imds_proxy import daemon

    logs.setup(cfg.log_format, cfg.log_level)

    async def role_credentials(name: str) -> Credentials:  # for roles chained off another
        return await engine.get(name)

    sources, mfa_sessions = build_sources(cfg, utc_now, client_factory, role_credentials)
    engine = CredentialEngine(sources, cfg.refresh, utc_now)
    controller = control.Controller(cfg, engine, mfa_sessions, utc_now)
    notify = mfa.command_notifier(cfg.notify_command) if cfg.notify_command else None
    services: list[contextlib.AbstractAsyncContextManager[Any]] = [
        control.ControlServer(cfg.control_socket or control.default_path(), controller.handle),
        mfa.MfaWatcher(list({id(s): s for s in mfa_sessions.values()}.values()), utc_now, notify),
    ]
    try:
        asyncio.run(daemon.serve(cfg, engine, on_ready, services))
    except CredentialsUnavailable as e:
        cause = e.cause if e.cause is not None else e
        print(f"imds-proxy: cannot serve role {e.role}: {cause}", file=sys.stderr)
        return EXIT_FAILURE
    return 0


def cmd_serve(args: argparse.Namespace) -> int:
    cfg = config.load(_cli_values(args), os.environ, args.config, profiles.read_profile)
    return run_daemon(cfg)


def _control_path(args: argparse.Namespace) -> Path:
    """--control-socket, else IMDS_PROXY_CONTROL_SOCKET, else the config file's, else the default."""
    if args.control_socket:
        return Path(args.control_socket)
    values = config.read_env(os.environ)
    env_file = os.environ.get("IMDS_PROXY_CONFIG")
    file = args.config or (Path(env_file) if env_file else None)
    if file is not None and "control_socket" not in values:
        values = config.read_file(file)
    raw = values.get("control_socket")
    return Path(str(raw)).expanduser() if raw else control.default_path()


def cmd_mfa(args: argparse.Namespace) -> int:
    path = _control_path(args)
    info = control.request(path, {"op": "mfa-role", "role": args.role}, timeout=10)
    if not info.get("ok"):
        raise ControlError(str(info.get("error")))
    code = control.read_code(f"MFA code for {info['serial']} (role {info['role']}): ").strip()
    if not mfa.CODE_RE.fullmatch(code):
        raise ControlError("an MFA code is six digits; run `imds-proxy mfa` again with the current one")
    reply = control.request(path, {"op": "mfa", "role": info["role"], "code": code})
    if not reply.get("ok"):
        raise ControlError(str(reply.get("error")))
    print(reply["message"])
    return 0


def cmd_roles(args: argparse.Namespace) -> int:
    import json

    reply = control.request(_control_path(args), {"op": "roles"}, timeout=10)
    if not reply.get("ok"):
        raise ControlError(str(reply.get("error")))
    print(json.dumps(reply["roles"], indent=2) if args.json else control.render_roles(reply["roles"]))
    return 0


def cmd_sandbox(args: argparse.Namespace) -> int:
    from imds_proxy import sandbox

    values = config.merge(config.read_env(os.environ), _cli_values(args))
    values.update(role_arn=sandbox.DEFAULT_ROLE_ARN, region=sandbox.REGION)
    values.pop("sts_endpoint_url", None)
    cfg = config.build(values)  # validate everything before starting anything
    # Log from the start: the local AWS logs while the scenario is created.
    logs.setup(cfg.log_format, cfg.log_level)
    aws = sandbox.LocalAws(port=args.aws_port).start()
    try:
        sandbox.create_default_role(aws)

        def ready(bound: list[Listener]) -> None:
            print(sandbox.exports(bound[0].url, aws.url), flush=True)
            print(
                f"imds-proxy sandbox: serving {cfg.role.role_arn} on {bound[0].url} "
                f"(local AWS {aws.url}).\n"
                "In another shell, run the export lines above, then try:\n"
                "  aws sts get-caller-identity\n"
                "Ctrl-C stops.",
                file=sys.stderr,
                flush=True,
            )

        return run_daemon(cfg, lambda _spec: aws.client("sts"), ready)
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
