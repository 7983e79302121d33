"""`imds-proxy sandbox` and `imds-proxy exec --sandbox`: a scenario built in a local AWS, its role
served by the daemon or to one command. The sandbox package (boto3, moto) is imported only here,
and only when one of them runs."""

from __future__ import annotations

import argparse
import json
import os
import sys
from typing import TYPE_CHECKING

from imds_proxy import config
from imds_proxy.cli.common import cli_values, pick_role
from imds_proxy.cli.exec import command_of, run_exec
from imds_proxy.cli.serve import run_daemon
from imds_proxy.config import Config
from imds_proxy.config.listeners import Listener
from imds_proxy.engine.policy import RefreshPolicy
from imds_proxy.runtime import activation, logs

if TYPE_CHECKING:
    from imds_proxy.engine.credentials import Source
    from imds_proxy.sandbox.scenarios.model import Scenario


def scenario_config(
    args: argparse.Namespace,
    scenario: Scenario,
    dropped: tuple[str, ...] = (),
    inherited: tuple[Listener, ...] = (),
) -> Config:
    """The environment's and the options' config, serving the scenario's role in its region
    (and on `inherited` sockets from systemd). An STS endpoint of the user's own does not
    apply: STS is the local AWS's."""
    values = config.merge(config.read_env(os.environ), cli_values(args))
    values.update(role_arn=scenario.role.arn, region=scenario.region)
    for key in ("sts_endpoint_url", *dropped):
        values.pop(key, None)
    return config.build(values, inherited=inherited)


def cmd_sandbox(args: argparse.Namespace) -> int:
    from imds_proxy.engine import served_lifetime
    from imds_proxy.sandbox.scenarios import file as scenario_file

    if args.list_scenarios:
        print(scenario_file.catalogue())
        return 0
    # Validate everything before starting anything.
    scenario = scenario_file.load(args.scenario, args.variant)
    cfg = scenario_config(args, scenario, inherited=activation.take(os.environ))
    lifetime = None
    policy = RefreshPolicy.of(cfg)
    if args.served_lifetime is not None:
        lifetime = served_lifetime.checked(args.served_lifetime, cfg.role.duration)
        policy = served_lifetime.policy_for(policy, lifetime)

    from imds_proxy.runtime.reload import listener_sockets
    from imds_proxy.sandbox import local_aws as sandbox
    from imds_proxy.sandbox import summary

    # Bound before the local AWS starts and the scenario is built (seconds): a busy --listen
    # port is one line at once. The daemon serves on these sockets.
    sockets = listener_sockets(cfg.listeners)
    # Log from the start: the local AWS logs while the scenario is built.
    logs.setup(cfg.log_format, cfg.log_level)
    with sandbox.session(scenario, args.aws_port) as (aws, world):
        watched: dict[str, sandbox.Watched] = {}

        def wrap(sources: dict[str, Source]) -> dict[str, Source]:
            watched.update(sandbox.watched_sources(sources, world.source_description, lifetime))
            return dict(watched)

        def ready(bound: list[Listener]) -> None:
            print(summary.exports(bound[0].url, aws.url, scenario.region), flush=True)
            rotation = None
            if lifetime is not None:
                rotation = (lifetime, served_lifetime.rotation_period(lifetime, policy))
            error = watched[cfg.role.name].error
            text = summary.summary(
                world, bound[0].url, aws.url, cfg.role.session_name, error, rotation, cli_version
            )
            if cfg.log_format == "json":  # stderr stays one JSON object per line
                doc = {"event": "sandbox_ready", "summary": text.splitlines()}
                text = json.dumps(doc, ensure_ascii=False)
            print(text, file=sys.stderr, flush=True)

        cli_version = summary.cli_version()  # before serving: `aws --version` takes a second
        required = scenario.if_denied == "exit"
        factory = sandbox.sts_factory(aws, world)
        return run_daemon(
            cfg, factory, ready, wrap_sources=wrap, policy=policy, require_credentials=required,
            sockets=sockets,
        )  # fmt: skip


#: Keys about the daemon's own listeners, which exec does not open (it serves a private one).
#: Dropped for the sandbox, whose single role they could not refer to.
NOT_FOR_EXEC = ("listen", "clients", "container_token", "container_token_file")


def cmd_exec_sandbox(args: argparse.Namespace) -> int:
    """`exec --sandbox`: the command runs against the scenario's local AWS, with its role."""
    command = command_of(args)
    quiet = args.log_level is None

    from imds_proxy.sandbox import local_aws as sandbox
    from imds_proxy.sandbox.scenarios import file as scenario_file

    scenario = scenario_file.load(args.scenario, args.variant)
    cfg = scenario_config(args, scenario, NOT_FOR_EXEC)  # validate everything before starting anything
    role = pick_role(cfg, args.role)
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
