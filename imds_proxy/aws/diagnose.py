"""doctor's AWS-facing checks: who our own credentials are (sts:GetCallerIdentity), and for a
role, which side refuses AssumeRole (iam:GetRole's trust policy, iam:SimulatePrincipalPolicy)
and whether its duration fits (MaxSessionDuration, the 1 h chaining cap). Each is a Verdict."""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from typing import Any

import botocore.exceptions as bce

from imds_proxy.aws import profiles
from imds_proxy.aws.sts.clients import STSClient
from imds_proxy.aws.sts.errors import classify
from imds_proxy.aws.sts.source import CHAINED_MAX_DURATION
from imds_proxy.aws.trust import ASSUME_ROLE, read_trust
from imds_proxy.config.arns import account_of
from imds_proxy.config.roles import RoleSpec
from imds_proxy.engine.verdict import Verdict, fail, ok, skip, warn
from imds_proxy.errors import AssumeRoleDenied, SourceError

#: An IAM client signing like the role's STS client (None: none can be made for this role).
IamFactory = Callable[[RoleSpec], Any]
_ASSUMED = re.compile(r"arn:aws:sts::(\d{12}):assumed-role/([^/]+)/.+")


def default_iam(spec: RoleSpec) -> Any:
    """IAM on the role's source credentials, the ones its STS client signs with."""
    session = profiles.sts_session(spec)
    return session.create_client(
        "iam", region_name=spec.region or session.get_config_variable("region") or "us-east-1"
    )


def _code(error: bce.ClientError) -> str:
    return str(error.response.get("Error", {}).get("Code", "Unknown"))


def own_identity(
    spec: RoleSpec, make_client: Callable[[], STSClient], source: str
) -> tuple[Verdict, str | None]:
    """Who our own credentials are (their ARN, for the other checks), from which source, and
    which STS endpoint answered."""
    if spec.web_identity_token_file:
        return skip(f"own credentials: none needed, role {spec.name} uses {source}"), None
    try:
        client = make_client()
        who = client.get_caller_identity()
    except (bce.BotoCoreError, bce.ClientError) as e:
        return fail(f"own credentials ({source}): {classify(e, spec)}"), None
    except SourceError as e:
        return fail(f"own credentials ({source}): {e}"), None
    arn, account, endpoint = who["Arn"], who["Account"], client.meta.endpoint_url
    return ok(f"own credentials: {arn} (account {account}), from {source}, STS at {endpoint}"), arn


def get_role(spec: RoleSpec, iam: Any, caller: str | None) -> tuple[Mapping[str, Any] | None, Verdict]:
    """iam:GetRole's answer, or a skip saying why doctor cannot read the role."""
    if iam is None or caller is None:
        return None, skip(f"role {spec.name}: not read (no IAM client on our own credentials)")
    if account_of(caller) != spec.account_id:
        return None, skip(
            f"trust policy of {spec.role_arn}: not readable from account {account_of(caller)} (IAM "
            f"reads only the caller's own account); ask account {spec.account_id} whether it trusts {caller}"
        )
    try:
        role: Mapping[str, Any] = iam.get_role(RoleName=spec.role_arn.rsplit("/", 1)[-1])["Role"]
    except bce.ClientError as e:
        return None, skip(
            f"trust policy of {spec.role_arn}: not read (iam:GetRole: {_code(e)}); allowing the caller "
            "iam:GetRole on the role lets doctor read it"
        )
    except bce.BotoCoreError as e:
        return None, skip(f"trust policy of {spec.role_arn}: not read ({e})")
    return role, ok(f"role {spec.name}: read with iam:GetRole")


def trust_verdict(spec: RoleSpec, role: Mapping[str, Any], caller: str) -> Verdict:
    """What the role's trust policy says of the caller, and of the ExternalId and MFA."""
    t = read_trust(role.get("AssumeRolePolicyDocument") or {}, caller)
    where = f"trust policy of {spec.role_arn}"
    if t.denied:
        return fail(f"{where} denies {caller}: remove that Deny")
    if not t.named:
        trusted = ", ".join(t.principals) or "nobody"
        return fail(f"{where} does not name {caller} or its account (it trusts {trusted}): add it")
    if t.external_ids and spec.external_id is None:
        return fail(f"{where} requires an ExternalId: set external_id (--external-id) to the one given")
    if t.external_ids and spec.external_id not in t.external_ids:
        return fail(f"{where} expects another ExternalId than the configured one: check external_id")
    if t.needs_mfa and spec.mfa_serial is None:
        return fail(f"{where} requires MFA (aws:MultiFactorAuthPresent): set mfa_serial (--mfa-serial)")
    return ok(f"{where} trusts {caller}")


def _principal(caller: str) -> str:
    """The IAM entity a caller's permissions belong to (a role session's role)."""
    m = _ASSUMED.fullmatch(caller)
    return f"arn:aws:iam::{m.group(1)}:role/{m.group(2)}" if m else caller


def permissions_verdict(spec: RoleSpec, iam: Any, caller: str | None) -> Verdict:
    """Whether the caller's permissions policies allow sts:AssumeRole on the role."""
    if iam is None or caller is None:
        return skip("caller's permissions: not simulated (no IAM client on our own credentials)")
    try:
        answer = iam.simulate_principal_policy(
            PolicySourceArn=_principal(caller), ActionNames=[ASSUME_ROLE], ResourceArns=[spec.role_arn]
        )
        decision = str(answer["EvaluationResults"][0]["EvalDecision"])
    except bce.ClientError as e:
        return skip(
            f"permissions of {caller}: not simulated (iam:SimulatePrincipalPolicy: {_code(e)}); allowing "
            "it lets doctor tell"
        )
    except (bce.BotoCoreError, KeyError, IndexError) as e:
        return skip(f"permissions of {caller}: not simulated ({e})")
    if decision == "allowed":
        return ok(f"permissions of {caller} allow {ASSUME_ROLE} on {spec.role_arn}")
    if decision == "explicitDeny":
        return fail(f"a Deny in the permissions of {caller} refuses {ASSUME_ROLE} on {spec.role_arn}")
    return fail(f"no permissions policy of {caller} allows {ASSUME_ROLE} on {spec.role_arn}: add it")


def explain_denial(
    spec: RoleSpec, iam: Any, caller: str | None, role: Mapping[str, Any] | None
) -> list[Verdict]:
    """Both sides of a refused AssumeRole, each as far as our own credentials may look."""
    verdicts = [trust_verdict(spec, role, caller)] if role is not None and caller else []
    return [*verdicts, permissions_verdict(spec, iam, caller)]


def duration_verdicts(
    spec: RoleSpec, role: Mapping[str, Any] | None, chained: bool
) -> list[Verdict]:
    """The configured duration against the role's MaxSessionDuration and the chaining cap."""
    out: list[Verdict] = []
    most = role.get("MaxSessionDuration") if role is not None else None
    if isinstance(most, int) and spec.duration > most:
        out.append(
            fail(
                f"duration {spec.duration} s is above the MaxSessionDuration of {spec.role_arn} "
                f"({most} s): lower duration, or raise the role's maximum"
            )
        )
    if chained and spec.duration > CHAINED_MAX_DURATION:
        out.append(
            warn(
                f"duration {spec.duration} s: our own credentials are role credentials (role chaining), "
                f"which STS caps at {CHAINED_MAX_DURATION} s; the daemon asks for {CHAINED_MAX_DURATION} s: "
                f"set duration = {CHAINED_MAX_DURATION}"
            )
        )
    return out


def is_chained(caller: str | None) -> bool:
    """Whether credentials with this ARN are role credentials (STS's 1 h chaining cap applies)."""
    return caller is not None and _ASSUMED.fullmatch(caller) is not None


def is_denial(error: SourceError) -> bool:
    return isinstance(error, AssumeRoleDenied)
