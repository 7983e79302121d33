"""The sandbox's local AWS: moto's server in-process on loopback, a scenario's world built in it,
then IAM enforced. Imported lazily by cli.sandbox only.

Like a lab bench it talks to its local AWS with boto3 to build the world; the daemon itself still
reaches STS only through `sts`, with the keys of the scenario's caller.
"""

from __future__ import annotations

import contextlib
import logging
import os
import socket
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import timedelta
from functools import partial
from typing import Any

import boto3
import botocore.exceptions as bce
import botocore.session

from imds_proxy.engine.credentials import Credentials, Source, WrappedSource, utc_now
from imds_proxy.engine.served_lifetime import ServedLifetime
from imds_proxy.errors import SandboxUnavailable, ScenarioError, SourceError
from imds_proxy.sandbox.scenarios.model import EC2, EC2_STAND_IN, Scenario

log = logging.getLogger("imds_proxy.sandbox")

REGION = "us-east-1"
#: moto accepts any key pair while IAM is not enforced; these are AWS's documented examples.
_SETUP_KEY = ("AKIAIOSFODNN7EXAMPLE", "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY")


_NO_PROFILE = {"profile": (None, None, None, None)}


def _tag_account(account: str, request: Any, **_: Any) -> None:
    # moto's documented way to act in another account before IAM is enforced (afterwards the
    # account comes from the access key, as in AWS).
    request.headers["x-moto-account-id"] = account


class LocalAws:
    """moto's server on a loopback port, running in a thread of this process."""

    def __init__(self, host: str = "127.0.0.1", port: int = 0) -> None:
        try:
            from moto.server import ThreadedMotoServer
        except ImportError:
            raise SandboxUnavailable(
                "the sandbox needs moto: pip install 'imds-proxy[sandbox]' (make run does it)"
            ) from None
        self._server = ThreadedMotoServer(ip_address=host, port=port, verbose=False)
        self._host = host
        self._port = port

    def start(self) -> LocalAws:
        # moto would put every key in this one account, whatever the scenario says.
        if os.environ.pop("MOTO_ACCOUNT_ID", None) is not None:
            log.warning("ignoring MOTO_ACCOUNT_ID: the sandbox's accounts come from the scenario")
        try:
            if self._port:
                # werkzeug's thread would log the busy port and leave start() waiting forever.
                with socket.socket() as probe:
                    probe.bind((self._host, self._port))
            self._server.start()
        except OSError as e:
            raise SandboxUnavailable(
                f"cannot start the local AWS on {self._host}:{self._port}: {e.strerror}; "
                "pick another --aws-port"
            ) from None
        self._host, self._port = self._server.get_host_and_port()
        return self

    def stop(self) -> None:
        self._server.stop()

    @property
    def url(self) -> str:
        return f"http://{self._host}:{self._port}"

    def client(
        self,
        service: str,
        *,
        account: str | None = None,
        keys: tuple[str, str] | None = None,
        region: str = REGION,
    ) -> Any:
        """A boto3 client for the local AWS: the set-up key (acting in `account`), or `keys`;
        never the environment's credentials."""
        key_id, secret = keys or _SETUP_KEY
        # A session of its own, blind to AWS_PROFILE: a profile named there that does not
        # exist would otherwise stop the sandbox (boto3's default session reads it).
        session = boto3.Session(botocore_session=botocore.session.Session(session_vars=_NO_PROFILE))
        client = session.client(  # type: ignore[call-overload]
            service,
            region_name=region,
            endpoint_url=self.url,
            aws_access_key_id=key_id,
            aws_secret_access_key=secret,
        )
        if account is not None:
            client.meta.events.register("before-sign", partial(_tag_account, account))
        return client

    def enforce_iam(self) -> None:
        """From now on every request needs a valid key and is allowed only by IAM policy."""
        from imds_proxy.sandbox import iam as sandbox_iam

        sandbox_iam.enforce()
        log.info("local AWS at %s: IAM enforced", self.url)


@dataclass(frozen=True)
class World:
    """What a built scenario gives the daemon: whose keys call STS, for which role."""

    scenario: Scenario
    caller_arn: str
    caller_key: tuple[str, str] = field(repr=False)

    @property
    def source_description(self) -> str:
        """Whose keys the daemon calls STS with, for `imds-proxy roles` (not the default chain)."""
        standing_in = f", standing in for {EC2}" if self.scenario.caller is None else ""
        return f"local AWS as {self.caller_arn}{standing_in}"


@contextlib.contextmanager
def _step(scenario: Scenario, key: str) -> Iterator[None]:
    """Turn the local AWS refusing part of a scenario into one line naming the file and key."""
    try:
        yield
    except bce.ClientError as e:
        err = e.response.get("Error", {})
        problem = f"the local AWS refused it ({err.get('Code')}: {err.get('Message')})"
        raise ScenarioError(scenario.source, key, problem, "fix the value") from None
    except (bce.BotoCoreError, AttributeError) as e:
        raise ScenarioError(scenario.source, key, f"cannot be done ({e})", "fix the value") from None


def build(aws: LocalAws, s: Scenario) -> World:
    """Create the scenario's world in the local AWS (IAM not yet enforced)."""
    managed = [*(u.managed_policies for u in s.users), *(r.managed_policies for r in s.roles)]
    if any(arn.startswith("arn:aws:iam::aws:") for arns in managed for arn in arns):
        os.environ["MOTO_IAM_LOAD_MANAGED_POLICIES"] = "true"  # read when an account's IAM is first used
    iam = {account: aws.client("iam", account=account) for account in s.accounts}
    for p in s.policies:
        with _step(s, f"policies.{p.name}"):
            iam[p.account].create_policy(PolicyName=p.name, PolicyDocument=p.document)
    for u in s.users:
        with _step(s, f"users.{u.name}"):
            iam[u.account].create_user(UserName=u.name)
            for name, doc in u.policies.items():
                iam[u.account].put_user_policy(UserName=u.name, PolicyName=name, PolicyDocument=doc)
            for arn in u.managed_policies:
                iam[u.account].attach_user_policy(UserName=u.name, PolicyArn=arn)
    for r in s.roles:
        with _step(s, f"roles.{r.name}"):
            iam[r.account].create_role(RoleName=r.name, AssumeRolePolicyDocument=r.trust)
            for name, doc in r.policies.items():
                iam[r.account].put_role_policy(RoleName=r.name, PolicyName=name, PolicyDocument=doc)
            for arn in r.managed_policies:
                iam[r.account].attach_role_policy(RoleName=r.name, PolicyArn=arn)
    for ip in s.instance_profiles:
        with _step(s, f"instance_profiles.{ip.name}"):
            iam[ip.account].create_instance_profile(InstanceProfileName=ip.name)
            iam[ip.account].add_role_to_instance_profile(InstanceProfileName=ip.name, RoleName=ip.role)
    for b in s.buckets:
        with _step(s, f"buckets.{b.name}"):
            s3 = aws.client("s3", account=b.account, region=s.region)
            where = (
                {}
                if s.region == "us-east-1"
                else {"CreateBucketConfiguration": {"LocationConstraint": s.region}}
            )
            s3.create_bucket(Bucket=b.name, **where)
            for key, body in b.objects.items():
                s3.put_object(Bucket=b.name, Key=key, Body=body.encode())
    for c in s.calls:
        with _step(s, c.key):
            getattr(aws.client(c.service, account=c.account, region=s.region), c.operation)(**c.params)

    caller = s.caller
    account, user = (caller.account, caller.name) if caller else (s.role.account, EC2_STAND_IN)
    with _step(s, "serve.assumed_by"):
        if caller is None:
            iam[account].create_user(UserName=EC2_STAND_IN)
        key = iam[account].create_access_key(UserName=user)["AccessKey"]
    caller_arn = f"arn:aws:iam::{account}:user/{user}"
    if caller is None:
        from imds_proxy.sandbox import iam as sandbox_iam

        sandbox_iam.stand_in(caller_arn, EC2)
    log.info(
        "local AWS at %s: built scenario %s%s in account(s) %s; the daemon calls STS as %s (key …%s)",
        aws.url,
        s.name,
        f" (variant {s.variant})" if s.variant else "",
        ", ".join(s.accounts),
        EC2 if caller is None else caller_arn,
        key["AccessKeyId"][-4:],
    )
    return World(s, caller_arn, (key["AccessKeyId"], key["SecretAccessKey"]))


class Watched(WrappedSource):
    """A Source that remembers whether its last fetch failed, for the start-up summary, and
    says whose keys it calls STS with (the sandbox's client factory signs with the caller's)."""

    def __init__(self, source: Source, description: str) -> None:
        super().__init__(source)
        self._description = description
        self.error: SourceError | None = None

    @property
    def description(self) -> str:
        return self._description

    async def fetch(self, upstream: Credentials | None = None) -> Credentials:
        try:
            creds = await super().fetch(upstream)
        except SourceError as e:
            self.error = e
            raise
        self.error = None
        return creds


def watched_sources(
    sources: Mapping[str, Source], description: str, lifetime: timedelta | None = None
) -> dict[str, Watched]:
    """Each role's own source, watched (and with `lifetime`, its served lifetime capped)."""
    out: dict[str, Watched] = {}
    for name, source in sources.items():
        if lifetime is not None:
            source = ServedLifetime(source, lifetime, utc_now)
        out[name] = Watched(source, description)
    return out


@contextlib.contextmanager
def session(s: Scenario, aws_port: int = 0) -> Iterator[tuple[LocalAws, World]]:
    """The local AWS with the scenario built and IAM enforced, stopped on exit. Used by
    `sandbox` and `exec --sandbox` alike."""
    aws = LocalAws(port=aws_port).start()
    try:
        world = build(aws, s)
        aws.enforce_iam()
        yield aws, world
    finally:
        aws.stop()


def sts_factory(aws: LocalAws, world: World) -> Callable[[Any], Any]:
    """The daemon's STS client: the scenario's caller keys (the EC2 stand-in or a user)."""
    return lambda _spec: aws.client("sts", keys=world.caller_key, region=world.scenario.region)
