"""A source per configured role: roles naming the same MFA device and source share one MFA
session; a chained role names its source role, whose credentials the engine hands it."""

from __future__ import annotations

from collections.abc import Hashable

from imds_proxy.aws import profiles
from imds_proxy.aws.sts.clients import ClientFactory
from imds_proxy.aws.sts.source import AssumeRoleSource
from imds_proxy.config import Config
from imds_proxy.config.roles import RoleSpec
from imds_proxy.engine.credentials import Clock
from imds_proxy.engine.mfa import MfaSession


def _mfa_key(spec: RoleSpec) -> Hashable:
    """Roles that name the same device with the same source share one MFA session."""
    return (
        spec.mfa_serial,
        spec.source_profile,
        spec.credential_source,
        spec.source_role,
        spec.mfa_process,
        spec.mfa_duration,
    )


def build_sources(
    cfg: Config,
    clock: Clock,
    client_factory: ClientFactory,
) -> tuple[dict[str, AssumeRoleSource], dict[str, MfaSession]]:
    """A source per configured role, and the MFA session of each role that needs one."""
    sessions: dict[Hashable, MfaSession] = {}
    by_role: dict[str, MfaSession] = {}
    sources: dict[str, AssumeRoleSource] = {}
    for name, spec in cfg.roles.items():
        mfa = None
        if spec.mfa_serial is not None:
            mfa = sessions.setdefault(
                _mfa_key(spec),
                MfaSession(spec.mfa_serial, spec.mfa_duration, spec.mfa_process, cfg.mfa_warn_ahead),
            )
            mfa.roles.append(name)
            by_role[name] = mfa
        sources[name] = AssumeRoleSource(
            spec, clock, client_factory, mfa=mfa, chained=profiles.source_is_a_role(spec)
        )
    return sources, by_role
