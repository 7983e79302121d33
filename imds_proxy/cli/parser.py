"""Command line: the parser and main(), which runs a sub-command and turns its errors into one
line and an exit code. Each sub-command's body is in cli/<command>.py (mfa and roles: control),
imported only when that command runs: `healthcheck` and `env` load neither boto3 nor aiohttp."""

from __future__ import annotations

import argparse
import importlib
import os
import re
import sys
from collections.abc import Callable, Sequence
from pathlib import Path

from imds_proxy import __version__
from imds_proxy.cli.common import EXIT_CONFIG, EXIT_FAILURE
from imds_proxy.cli.options import ADMIN, COMMON, CONTAINER, ROLE_OPTIONS, SERVE, add
from imds_proxy.errors import ConfigError, ConfigErrors, ImdsProxyError
from imds_proxy.runtime import shellenv
from imds_proxy.sandbox.scenarios import DEFAULT_SCENARIO


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="imds-proxy",
        description="Serve an IAM role's credentials to unmodified AWS SDKs over IMDSv2.",
    )
    parser.add_argument("--version", action="version", version=f"imds-proxy {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    serve = sub.add_parser("serve", help="assume a role through STS and serve it over IMDSv2")
    serve.add_argument("--config", type=Path, help="TOML config file (same keys as the options)")
    add(serve, SERVE)
    add(serve, ROLE_OPTIONS)
    add(serve, COMMON)
    add(serve, CONTAINER)
    add(serve, ADMIN)
    serve.set_defaults(func="serve:cmd_serve")

    mfa_cmd = sub.add_parser("mfa", help="give the running daemon an MFA code (prompts for it)")
    mfa_cmd.add_argument("--role", help="the role that needs the code (default: the only MFA role)")
    roles_cmd = sub.add_parser("roles", help="list the running daemon's roles, credentials and errors")
    roles_cmd.add_argument("--json", action="store_true", help="print JSON")
    for cmd in (mfa_cmd, roles_cmd):
        cmd.add_argument("--control-socket", type=Path, help="the daemon's control socket")
        cmd.add_argument("--config", type=Path, help="the daemon's config file (for its control_socket)")
    mfa_cmd.set_defaults(func="control:cmd_mfa")
    roles_cmd.set_defaults(func="control:cmd_roles")

    sandbox = sub.add_parser(
        "sandbox",
        help="run a local AWS (moto, IAM enforced) built from a scenario and serve its role",
        description="Run a local AWS (moto) built from a scenario, with IAM enforced, and serve the "
        "scenario's role over IMDSv2. Prints export lines on standard output.",
    )
    sandbox.add_argument(
        "--scenario",
        default=DEFAULT_SCENARIO,
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
    add(sandbox, COMMON)
    add(sandbox, ADMIN)
    sandbox.set_defaults(func="sandbox:cmd_sandbox")

    run = sub.add_parser(
        "exec",
        help="run a command with the role's credentials (private container endpoint)",
        usage="imds-proxy exec [OPTIONS] -- COMMAND [ARGS...]",
        description="Run COMMAND with a role's credentials, served on a private loopback port with a fresh "
        "token (AWSCONTAINER_CREDENTIALS_FULL_URI and AWSCONTAINER_AUTHORIZATION_TOKEN); inherited "
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
        default=DEFAULT_SCENARIO,
        metavar="NAME|FILE",
        help="with --sandbox: the scenario to build (default photos; see sandbox --list-scenarios)",
    )
    run.add_argument("--variant", help="with --sandbox: a variant of the scenario")
    add(run, SERVE)
    add(run, {"--profile": ROLE_OPTIONS["--profile"]})
    add(run, {k: v for k, v in COMMON.items() if k != "--listen"})
    run.add_argument("command", nargs=argparse.REMAINDER, help="the command and its arguments, after --")
    run.set_defaults(func="exec:cmd_exec")

    env = sub.add_parser(
        "env",
        help="print the shell lines that point SDKs at a running daemon",
        description="Print what a shell needs to use the daemon the config describes: "
        'eval "$(imds-proxy env)" (sh), imds-proxy env --shell fish | source, '
        "imds-proxy env --shell powershell | Invoke-Expression. Never prints a secret: with "
        "--container it points at the token file (AWSCONTAINER_AUTHORIZATION_TOKEN_FILE).",
    )
    env.add_argument("--config", type=Path, help="TOML config file (default: $IMDS_PROXY_CONFIG)")
    env.add_argument("--shell", choices=shellenv.SHELLS, default="sh", help="syntax to print (default sh)")
    env.add_argument("--container", action="store_true", help="use the container endpoint instead of IMDS")
    env.add_argument("--role", help="the configured role to use (default: the first listener's)")
    env.set_defaults(func="env:cmd_env")

    _add_doctor(sub)

    health = sub.add_parser(
        "healthcheck",
        help="exit 0 if the running daemon serves valid credentials on every listener",
        description="Ask each listener, over IMDSv2, for its role's credentials; exit 0 when all are "
        "valid, 1 otherwise. For Docker's HEALTHCHECK and Kubernetes probes.",
    )
    health.add_argument("--config", type=Path, help="TOML config file (default: $IMDS_PROXY_CONFIG)")
    health.add_argument("--listen", help="probe this HOST:PORT instead of the configured listeners")
    health.add_argument("--timeout", type=float, default=3.0, help="seconds per request (default 3)")
    health.set_defaults(func="healthcheck:cmd_healthcheck")
    _add_host_commands(sub)
    agent = sub.add_parser(
        "node-agent",
        help="serve per-pod roles on a Kubernetes node, proven by ServiceAccount tokens",
        description="The DaemonSet mode (docs/kubernetes.md): the container-credentials endpoint on "
        "169.254.170.23 and [fd00:ec2::23]; each request's token is checked with TokenReview and "
        "its pod gets the role the policy binds to its ServiceAccount.",
    )
    from imds_proxy.cli.node_agent import add_arguments

    add_arguments(agent)
    agent.set_defaults(func="node_agent:cmd_node_agent")
    for command in sub.choices.values():
        # Unknown flags are reported by the sub-command's parser, with its usage, not the top's.
        command.set_defaults(sub_parser=command)
    return parser


def _add_doctor(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    doctor = sub.add_parser(
        "doctor",
        help="check our own credentials, AssumeRole of each role, the daemon, and what shadows IMDS",
        description="Check, one verdict line a step, what serving the configured roles needs: our own "
        "credentials (sts:GetCallerIdentity), AssumeRole of each role (on a denial, which side "
        "refuses), the daemon at the IMDS endpoint this shell's SDKs use, and anything in this shell "
        "that wins over IMDS. Exit 0 only if every step passes. Prints key ids only by their suffix.",
    )
    doctor.add_argument("--config", type=Path, help="TOML config file (same keys as serve's options)")
    doctor.add_argument("--sandbox", action="store_true", help="check the scenario's role in a local AWS")
    doctor.add_argument("--scenario", default=DEFAULT_SCENARIO, metavar="NAME|FILE", help="with --sandbox")
    doctor.add_argument("--variant", help="with --sandbox: a variant of the scenario")
    doctor.add_argument("--aws-port", type=int, default=0, help="with --sandbox: port of the local AWS")
    doctor.add_argument("--timeout", type=float, default=1.0, help="seconds per request to IMDS (default 1)")
    add(doctor, SERVE)
    add(doctor, {k: v for k, v in ROLE_OPTIONS.items() if k != "--control-socket"})
    add(doctor, {k: COMMON[k] for k in ("--role-session-name", "--duration", "--log-format")})
    doctor.set_defaults(func="doctor:cmd_doctor")


def _add_host_commands(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """`address` and `redirect`: root's one-time steps that make this host an instance (docs/host.md)."""
    addr = sub.add_parser(
        "address",
        help="put the metadata address on a link of our own (root): up, down, status",
        description="Put 169.254.169.254/32 and fd00:ec2::254/128 (or each --address) on a link of "
        "our own (default imds0), take them off, or show them. Idempotent; needs root for up and down.",
    )
    addr.add_argument("action", choices=("up", "down", "status"))
    addr.add_argument("--address", action="append", metavar="CIDR", help="address/prefix; repeatable")
    addr.add_argument("--link", default="imds0", help="the link to use (default imds0)")
    addr.set_defaults(func="address:cmd_address")

    red = sub.add_parser(
        "redirect",
        help="print (or --apply, --remove) nftables rules sending 169.254.169.254:80 to the daemon",
        description="Print the nftables table `inet imds_proxy` that redirects the metadata address to "
        "the daemon: --local for this host's own processes (to 127.0.0.1/[::1]:PORT), --bridge for "
        "containers on a bridge (to the bridge's address:PORT). --apply installs it (root), --remove "
        "deletes it.",
    )
    red.add_argument("--local", action="store_true", help="redirect this host's own processes")
    red.add_argument("--bridge", action="append", type=_ifname, metavar="IFACE", help="a bridge; repeatable")
    red.add_argument("--port", type=int, default=8169, help="the daemon's port (default 8169)")
    mode = red.add_mutually_exclusive_group()
    mode.add_argument("--apply", action="store_true", help="install the rules (root)")
    mode.add_argument("--remove", action="store_true", help="delete the rules (root)")
    red.set_defaults(func="redirect:cmd_redirect")


def _ifname(value: str) -> str:
    """An interface name as the kernel allows it (it goes into nftables rules verbatim)."""
    if not re.fullmatch(r"[A-Za-z0-9_.@-]{1,15}", value):
        raise argparse.ArgumentTypeError(f"{value!r} is not an interface name")
    return value


def _command(args: argparse.Namespace) -> Callable[[argparse.Namespace], int]:
    """The sub-command's function, from its module (imported now, not before)."""
    target = str(args.func)
    if target == "exec:cmd_exec" and args.sandbox:
        target = "sandbox:cmd_exec_sandbox"
    module, _, name = target.partition(":")
    function: Callable[[argparse.Namespace], int] = getattr(
        importlib.import_module(f"imds_proxy.cli.{module}"), name
    )
    return function


#: What a shell reports for a command killed by SIGPIPE (128 + 13): `env | head` cut us short.
EXIT_PIPE = 141


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args, unknown = parser.parse_known_args(argv)
    if unknown:
        sub_parser = getattr(args, "sub_parser", parser)
        sub_parser.error(f"unrecognized arguments: {' '.join(unknown)}")
    try:
        code: int = _command(args)(args)
        sys.stdout.flush()  # here, where a closed pipe can still be caught
    except BrokenPipeError:
        # The reader (head, grep -q) stopped reading: no traceback, and nothing more to flush.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return EXIT_PIPE
    except ConfigError as e:
        for error in e.errors if isinstance(e, ConfigErrors) else (e,):
            print(f"imds-proxy: {error}", file=sys.stderr)
        return EXIT_CONFIG
    except ImdsProxyError as e:
        print(f"imds-proxy: {e}", file=sys.stderr)
        return EXIT_FAILURE
    except KeyboardInterrupt:
        return 130
    return code
