"""`imds-proxy doctor`: check, step by step, what serving a role needs — our own credentials,
AssumeRole of each role (and which side refuses), the daemon at the endpoint this shell's SDKs
use, and whatever in this shell wins over IMDS. One verdict line a step; exit 0 if all pass."""

from __future__ import annotations

import argparse
import asyncio
import os
from collections.abc import Callable, Iterator, Mapping
from typing import Any

from imds_proxy.aws import diagnose, profiles
from imds_proxy.aws.sts import ClientFactory, build_sources, default_client
from imds_proxy.aws.sts.source import AssumeRoleSource
from imds_proxy.cli.common import EXIT_FAILURE, cli_values, load_config
from imds_proxy.config import Config
from imds_proxy.config.roles import RoleSpec
from imds_proxy.engine.credentials import Clock, Credentials, utc_now
from imds_proxy.engine.verdict import Verdict, fail, ok, skip
from imds_proxy.errors import SourceError
from imds_proxy.runtime import logs, probe, shellenv
from imds_proxy.runtime.shadows import shadows

#: Where SDKs look for IMDS when nothing says otherwise (AWS_EC2_METADATA_SERVICE_ENDPOINT_MODE
#: picks the IPv6 one).
DEFAULT_ENDPOINTS = {"ipv4": "http://169.254.169.254/", "ipv6": "http://[fd00:ec2::254]/"}
#: SDKs give IMDS about 1 s a request; doctor does the same, so off EC2 it waits 1 s, not 30.
DEFAULT_TIMEOUT = 1.0
#: The verdicts say what went wrong; the sources' own warnings would say it twice.
_LOG_LEVEL = "ERROR"


def imds_endpoint(env: Mapping[str, str]) -> tuple[str, str]:
    """The IMDS base URL this shell's SDKs use, and what chose it."""
    given = env.get(shellenv.IMDS_ENDPOINT)
    if given:
        return (given if given.endswith("/") else given + "/"), shellenv.IMDS_ENDPOINT
    mode = env.get("AWS_EC2_METADATA_SERVICE_ENDPOINT_MODE", "ipv4").strip().lower()
    return DEFAULT_ENDPOINTS.get(mode, DEFAULT_ENDPOINTS["ipv4"]), "the SDKs' default"


def daemon_verdict(env: Mapping[str, str], clock: Clock, timeout: float) -> Verdict:
    """Whether a daemon answers IMDSv2 with valid credentials where this shell's SDKs ask."""
    if env.get("AWS_EC2_METADATA_DISABLED", "").strip().lower() == "true":
        return skip("daemon: not asked, AWS_EC2_METADATA_DISABLED switches IMDS off (see below)")
    url, chosen = imds_endpoint(env)
    try:
        line = probe.check_url(url, clock, timeout)
    except probe.Unhealthy as e:
        return fail(
            f"daemon at {url} ({chosen}): {e}; start `imds-proxy serve`, or point "
            f'{shellenv.IMDS_ENDPOINT} at it (eval "$(imds-proxy env)")'
        )
    return ok(f"daemon at {url} ({chosen}) answers IMDSv2: {line}")


def shadow_verdicts(env: Mapping[str, str]) -> list[Verdict]:
    found = shadows(env)
    if not found:
        return [ok("shadows: nothing in this shell's SDK credential chain comes before IMDS")]
    return [fail(f"shadow: {line}") for line in found]


class _Roles:
    """Each configured role checked in order; a chained role uses the credentials of its source."""

    def __init__(
        self,
        cfg: Config,
        client_factory: ClientFactory,
        iam_factory: diagnose.IamFactory,
        describe: Callable[[RoleSpec], str],
        clock: Clock,
    ) -> None:
        self.cfg = cfg
        self.factory = client_factory
        self.iam_factory = iam_factory
        self.describe = describe
        self.clock = clock
        self.sources, _ = build_sources(cfg, clock, client_factory)
        self.assumed: dict[str, Credentials] = {}

    def check(self) -> Iterator[Verdict]:
        for name, spec in self.cfg.roles.items():
            yield from self._role(name, spec, self.sources[name])

    def _role(self, name: str, spec: RoleSpec, source: AssumeRoleSource) -> Iterator[Verdict]:
        upstream = self.assumed.get(spec.source_role) if spec.source_role else None
        iam = None
        if spec.source_role is not None:
            if upstream is None:
                yield skip(f"AssumeRole {spec.role_arn}: its source role {spec.source_role} was not assumed")
                return
            up = self.cfg.roles[spec.source_role]
            caller: str | None = f"arn:aws:sts::{up.account_id}:assumed-role/{up.name}/{up.session_name}"
        else:
            own, caller = diagnose.own_identity(spec, lambda: self.factory(spec), self.describe(spec))
            yield own
            if not own.passed:
                yield skip(f"AssumeRole {spec.role_arn}: not tried without our own credentials")
                return
            iam = self._iam(spec) if caller is not None else None
        role, read = diagnose.get_role(spec, iam, caller)
        chained = profiles.source_is_a_role(spec) or diagnose.is_chained(caller)
        try:
            creds = asyncio.run(source.fetch(upstream) if upstream is not None else source.fetch())
        except SourceError as e:
            said = str(e)  # some of our messages start with the call already
            yield fail(said if said.startswith("AssumeRole ") else f"AssumeRole {spec.role_arn}: {said}")
            if diagnose.is_denial(e):
                if role is None:
                    yield read
                yield from diagnose.explain_denial(spec, iam, caller, role)
        else:
            self.assumed[name] = creds
            left = int((creds.expiration - self.clock()).total_seconds() // 60)
            yield ok(
                f"AssumeRole {spec.role_arn}: session {spec.session_name}, key {creds.key_suffix}, "
                f"valid for {left} min"
            )
        yield from diagnose.duration_verdicts(spec, role, chained)

    def _iam(self, spec: RoleSpec) -> Any:
        try:
            return self.iam_factory(spec)
        except (SourceError, ValueError):
            return None


def run(
    cfg: Config,
    env: Mapping[str, str],
    client_factory: ClientFactory = default_client,
    iam_factory: diagnose.IamFactory = diagnose.default_iam,
    describe: Callable[[RoleSpec], str] = lambda spec: spec.source_description,
    *,
    clock: Clock = utc_now,
    timeout: float = DEFAULT_TIMEOUT,
) -> int:
    """Print a verdict per step as it is reached; 0 when none failed, else 1."""
    passed = True
    steps = (
        _Roles(cfg, client_factory, iam_factory, describe, clock).check(),
        iter([daemon_verdict(env, clock, timeout)]),
        iter(shadow_verdicts(env)),
    )
    for step in steps:
        for verdict in step:
            print(verdict, flush=True)
            passed = passed and verdict.passed
    return 0 if passed else EXIT_FAILURE


def cmd_doctor(args: argparse.Namespace) -> int:
    if args.sandbox:
        return _sandboxed(args)
    cfg = load_config(args, cli_values(args))
    logs.setup(cfg.log_format, _LOG_LEVEL)
    return run(cfg, os.environ, timeout=args.timeout)


def _sandboxed(args: argparse.Namespace) -> int:
    """doctor against the scenario's local AWS (IAM enforced), signing as the scenario's caller."""
    from imds_proxy.cli.sandbox import NOT_FOR_EXEC, scenario_config
    from imds_proxy.sandbox import local_aws
    from imds_proxy.sandbox.scenarios import file as scenario_file

    scenario = scenario_file.load(args.scenario, args.variant)
    cfg = scenario_config(args, scenario, NOT_FOR_EXEC)  # everything validated before the local AWS starts
    logs.setup(cfg.log_format, _LOG_LEVEL)
    with local_aws.session(scenario, args.aws_port) as (aws, world):

        def iam(_spec: RoleSpec) -> object:
            return aws.client("iam", keys=world.caller_key, region=scenario.region)

        factory = local_aws.sts_factory(aws, world)
        return run(cfg, os.environ, factory, iam, lambda _: world.source_description, timeout=args.timeout)
