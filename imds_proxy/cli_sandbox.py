"""`imds-proxy sandbox` and `imds-proxy exec --sandbox`: a scenario built in a local AWS, its role
served by the daemon or to one command. The sandbox module (boto3, moto) is imported only here,
and only when one of them runs."""

from __future__ import annotations

import argparse
import dataclasses
import os
import sys
from typing import TYPE_CHECKING

from imds_proxy import config, logs
from imds_proxy.cli_exec import command_of, run_exec
from imds_proxy.cli_serve import cli_values, pick_role, run_daemon
from imds_proxy.config import Config
from imds_proxy.credentials import Source, utc_now
from imds_proxy.listeners import Listener

if TYPE_CHECKING:
    from imds_proxy.scenarios import Scenario


def _scenario_config(args: argparse.Namespace, scenario: Scenario, dropped: tuple[str, ...] = ()) -> Config:
    """The environment's and the options' config, serving the scenario's role in its region.
    An STS endpoint of the user's own does not apply: STS is the local AWS's."""
    values = config.merge(config.read_env(os.environ), cli_values(args))
    values.update(role_arn=scenario.role.arn, region=scenario.region)
    for key in ("sts_endpoint_url", *dropped):
        values.pop(key, None)
    return config.build(values)


def cmd_sandbox(args: argparse.Namespace) -> int:
    from imds_proxy import scenario_file, served_lifetime

    if args.list_scenarios:
        print(scenario_file.catalogue())
        return 0
    # Validate everything before starting anything.
    scenario = scenario_file.load(args.scenario, args.variant)
    cfg = _scenario_config(args, scenario)
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
            watched.append(sandbox.Watched(source, world.source_description))
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


#: Keys about the daemon's own listeners, which exec does not open (it serves a private one).
#: Dropped for the sandbox, whose single role they could not refer to.
_NOT_FOR_EXEC = ("listen", "clients", "container_token", "container_token_file")


def cmd_exec_sandbox(args: argparse.Namespace) -> int:
    """`exec --sandbox`: the command runs against the scenario's local AWS, with its role."""
    command = command_of(args)
    quiet = args.log_level is None

    from imds_proxy import sandbox, scenario_file

    scenario = scenario_file.load(args.scenario, args.variant)
    cfg = _scenario_config(args, scenario, _NOT_FOR_EXEC)  # validate everything before starting anything
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
