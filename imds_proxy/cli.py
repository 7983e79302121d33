"""Command line: sub-commands build Config and Source, run the daemon, print errors, set exit codes."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import dataclasses
import os
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from imds_proxy import __version__, channel, config, control, logs, mfa, profiles, shellenv
from imds_proxy.config import Config, Listener
from imds_proxy.credentials import Credentials, Source, utc_now
from imds_proxy.errors import (
    CommandNotRunnable,
    ConfigError,
    ControlError,
    CredentialsUnavailable,
    ImdsProxyError,
)
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
#: The container channel. The token itself has no option: command lines are visible to
#: every user (ps); it comes from the config file, IMDS_PROXY_CONTAINER_TOKEN or a file.
_CONTAINER = {
    "--container-token-file": (
        "container_token_file",
        "serve container credentials at /v1/credentials[/ROLE], authorized by the token in this "
        "file (generated if the file does not exist)",
    ),
    "--client": (
        "clients",
        "NETWORK=ROLE: clients from NETWORK get only ROLE; repeatable (needs the container endpoint)",
    ),
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
    _add(serve, _CONTAINER)
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

    run = sub.add_parser(
        "exec",
        help="run a command with the role's credentials (private container endpoint)",
        usage="imds-proxy exec [OPTIONS] -- COMMAND [ARGS...]",
        description="Run COMMAND with a role's credentials, served on a private loopback port with a fresh "
        "token (AWS_CONTAINER_CREDENTIALS_FULL_URI and AWS_CONTAINER_AUTHORIZATION_TOKEN); inherited "
        "AWS keys and profiles are removed so they cannot win. Exits with COMMAND's exit code.",
    )
    run.add_argument("--config", type=Path, help="TOML config file (same keys as serve's options)")
    run.add_argument("--role", help="the configured role to use (default: the first)")
    run.add_argument(
        "--sandbox",
        action="store_true",
        help="use a local AWS (moto) and its role; the command's AWS calls go there too",
    )
    run.add_argument("--aws-port", type=int, default=0, help="with --sandbox: port of the local AWS")
    run.add_argument(
        "--scenario",
        default="photos",
        metavar="NAME|FILE",
        help="with --sandbox: the scenario to build (default photos; see sandbox --list-scenarios)",
    )
    run.add_argument("--variant", help="with --sandbox: a variant of the scenario")
    _add(run, _SERVE)
    _add(run, {k: v for k, v in _COMMON.items() if k != "--listen"})
    run.add_argument("command", nargs=argparse.REMAINDER, help="the command and its arguments, after --")
    run.set_defaults(func=cmd_exec)

    env = sub.add_parser(
        "env",
        help="print the shell lines that point SDKs at a running daemon",
        description="Print what a shell needs to use the daemon the config describes: "
        'eval "$(imds-proxy env)" (sh), imds-proxy env --shell fish | source, '
        "imds-proxy env --shell powershell | Invoke-Expression. Never prints a secret: with "
        "--container it points at the token file (AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE).",
    )
    env.add_argument("--config", type=Path, help="TOML config file (default: $IMDS_PROXY_CONFIG)")
    env.add_argument("--shell", choices=shellenv.SHELLS, default="sh", help="syntax to print (default sh)")
    env.add_argument("--container", action="store_true", help="use the container endpoint instead of IMDS")
    env.add_argument("--role", help="the configured role to use (default: the first listener's)")
    env.set_defaults(func=cmd_env)

    health = sub.add_parser(
        "healthcheck",
        help="exit 0 if the running daemon serves valid credentials on every listener",
        description="Ask each listener, over IMDSv2, for its role's credentials; exit 0 when all are "
        "valid, 1 otherwise. For Docker's HEALTHCHECK and Kubernetes probes.",
    )
    health.add_argument("--config", type=Path, help="TOML config file (default: $IMDS_PROXY_CONFIG)")
    health.add_argument("--listen", help="probe this HOST:PORT instead of the configured listeners")
    health.add_argument("--timeout", type=float, default=3.0, help="seconds per request (default 3)")
    health.set_defaults(func=cmd_healthcheck)
    return parser


def _cli_values(args: argparse.Namespace) -> dict[str, Any]:
    return {k: getattr(args, k) for k in config.KEYS if getattr(args, k, None) is not None}


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
    controller = control.Controller(cfg, engine, mfa_sessions, utc_now)
    notify = mfa.command_notifier(cfg.notify_command) if cfg.notify_command else None
    services: list[contextlib.AbstractAsyncContextManager[Any]] = [
        control.ControlServer(
            cfg.control_socket or control.default_path(),
            controller.handle,
            required=cfg.control_socket is not None or bool(mfa_sessions),
        ),
        mfa.MfaWatcher(list({id(s): s for s in mfa_sessions.values()}.values()), utc_now, notify),
    ]
    try:
        asyncio.run(daemon.serve(cfg, engine, on_ready, services, require_credentials=require_credentials))
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
    with sandbox.session(scenario, args.aws_port) as (aws, world):
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

        required = scenario.if_denied == "exit"
        return run_daemon(
            cfg, sandbox.sts_factory(aws, world), ready, wrap_source=wrap, require_credentials=required
        )


def _pick_role(cfg: Config, name: str | None) -> str:
    if name is None:
        return next(iter(cfg.roles))
    if name not in cfg.roles:
        raise ConfigError("role", f"{name!r} is not configured", f"use one of: {', '.join(cfg.roles)}")
    return name


#: Keys about the daemon's own listeners, which exec does not open (it serves a private one).
#: Dropped for the sandbox, whose single role they could not refer to.
_NOT_FOR_EXEC = ("listen", "clients", "container_token", "container_token_file")


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
        cause = e.cause if e.cause is not None else e
        print(f"imds-proxy: cannot serve role {e.role}: {cause}", file=sys.stderr)
        return EXIT_FAILURE
    except CommandNotRunnable as e:
        print(f"imds-proxy: {e}", file=sys.stderr)
        return e.exit_code


def cmd_exec(args: argparse.Namespace) -> int:
    command = list(args.command)
    if command[:1] == ["--"]:
        command = command[1:]
    if not command:
        raise ConfigError("command", "nothing to run", "write imds-proxy exec [OPTIONS] -- COMMAND [ARGS...]")
    quiet = args.log_level is None
    if not args.sandbox:
        cfg = config.load(_cli_values(args), os.environ, args.config)
        return run_exec(cfg, _pick_role(cfg, args.role), command, quiet=quiet)

    from imds_proxy import sandbox, scenarios

    scenario = scenarios.load(args.scenario, args.variant)
    values = config.merge(config.read_env(os.environ), _cli_values(args))
    values.update(role_arn=scenario.role.arn, region=scenario.region)
    for key in ("sts_endpoint_url", *_NOT_FOR_EXEC):
        values.pop(key, None)
    cfg = config.build(values)  # validate everything before starting anything
    role = _pick_role(cfg, args.role)
    logs.setup(cfg.log_format, "WARNING" if quiet else cfg.log_level)
    with sandbox.session(scenario, args.aws_port) as (aws, world):
        # The command's own AWS calls go to the local AWS too (AWS_DEFAULT_REGION: botocore
        # and the CLI read only that one; AWS_REGION: the JS, Go and Java SDKs).
        extra = {
            "AWS_ENDPOINT_URL": aws.url,
            "AWS_REGION": scenario.region,
            "AWS_DEFAULT_REGION": scenario.region,
        }
        factory = sandbox.sts_factory(aws, world)
        return run_exec(cfg, role, command, quiet=quiet, client_factory=factory, extra_env=extra)


def _env_listener(cfg: Config, role: str | None) -> Listener:
    listeners = [lst for lst in cfg.listeners if role is None or cfg.listener_role(lst) == role]
    if not listeners:
        raise ConfigError(
            "listen",
            f"no listener serves role {role!r} over IMDS",
            f"add HOST:PORT={role} to listen, or use --container",
        )
    if listeners[0].port == 0:
        raise ConfigError("listen", f"{listeners[0]} has port 0 (chosen at start)", "give it a fixed port")
    return listeners[0]


def cmd_env(args: argparse.Namespace) -> int:
    cfg = config.load({}, os.environ, args.config)
    role = _pick_role(cfg, args.role) if args.role else None
    if not args.container:
        listener = _env_listener(cfg, role)
        url = channel.base_url(channel.client_host(listener), listener.port) + "/"
        change = shellenv.imds_change(url)
        comment = f"imds-proxy: role {cfg.listener_role(listener)} over IMDS at {url}"
        print(shellenv.render(change, args.shell, comment))
        return 0

    settings = cfg.container
    if settings.token_file is None:
        what = (
            "is set inline (container_token)"
            if settings.token
            else "is not set: the container endpoint is off"
        )
        raise ConfigError(
            "container_token_file",
            what,
            "set container_token_file: env never prints the token, it points SDKs at the file",
        )
    listener = _env_listener(cfg, None)
    host = channel.client_host(listener)
    if not channel.sdk_accepts(host):
        raise ConfigError(
            "listen",
            f"SDKs refuse plain-http container credentials from {host}",
            "listen on loopback (127.0.0.1) or on 169.254.170.2, 169.254.170.23 or [fd00:ec2::23]",
        )
    url = channel.credentials_url(listener, role)
    token_file = str(settings.token_file.absolute())
    if not settings.token_file.exists():
        print(f"imds-proxy: note: {token_file} does not exist yet; the daemon creates it", file=sys.stderr)
    if cfg.clients.configured and cfg.clients.role_for(host) is None:
        print(f"imds-proxy: note: {host} is not in the client map, which will refuse it", file=sys.stderr)
    change = shellenv.container_change(url, token_file=token_file)
    served = role or cfg.listener_role(listener)
    print(shellenv.render(change, args.shell, f"imds-proxy: role {served} over the container endpoint {url}"))
    return 0


def cmd_healthcheck(args: argparse.Namespace) -> int:
    from imds_proxy import probe

    if args.listen:
        listeners: tuple[Listener, ...] = (config.parse_listener(args.listen),)
    else:
        listeners = config.load({}, os.environ, args.config).listeners
    try:
        for listener in listeners:
            print(probe.check(listener, utc_now, args.timeout))
    except probe.Unhealthy as e:
        print(f"imds-proxy: unhealthy: {e}", file=sys.stderr)
        return EXIT_FAILURE
    return 0


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
