"""The request parameters of AssumeRole and AssumeRoleWithWebIdentity, from a RoleSpec: every
one its configuration sets, and no other."""

from __future__ import annotations

from typing import Any

from imds_proxy.config.roles import RoleSpec


def assume_role_params(spec: RoleSpec, duration: int) -> dict[str, Any]:
    """Every AssumeRole parameter the role's configuration sets."""
    params: dict[str, Any] = {
        "RoleArn": spec.role_arn,
        "RoleSessionName": spec.session_name,
        "DurationSeconds": duration,
    }
    if spec.external_id:
        params["ExternalId"] = spec.external_id
    if spec.policy:
        params["Policy"] = spec.policy
    if spec.policy_arns:
        params["PolicyArns"] = [{"arn": arn} for arn in spec.policy_arns]
    if spec.tags:
        params["Tags"] = [{"Key": k, "Value": v} for k, v in spec.tags]
    if spec.transitive_tag_keys:
        params["TransitiveTagKeys"] = list(spec.transitive_tag_keys)
    if spec.source_identity:
        params["SourceIdentity"] = spec.source_identity
    return params


def web_identity_params(spec: RoleSpec, duration: int, token: str) -> dict[str, Any]:
    """AssumeRoleWithWebIdentity takes no ExternalId, tags, source identity or MFA."""
    params: dict[str, Any] = {
        "RoleArn": spec.role_arn,
        "RoleSessionName": spec.session_name,
        "WebIdentityToken": token,
        "DurationSeconds": duration,
    }
    if spec.policy:
        params["Policy"] = spec.policy
    if spec.policy_arns:
        params["PolicyArns"] = [{"arn": arn} for arn in spec.policy_arns]
    return params
