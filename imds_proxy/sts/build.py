"""A source per configured role: roles naming the same MFA device and source share one MFA
session, and a chained role fetches its source role's credentials through the engine."""

from __future__ import annotations

import functools
from collections.abc import Awaitable, Callable, Hashable

from imds_proxy import profiles
from imds_proxy.config import Config
from imds_proxy.credentials import Clock, Credentials
from imds_proxy.mfa import MfaSession
from imds_proxy.roles import RoleSpec
from imds_proxy.sts.clients import ClientFactory
from imds_proxy.sts.source import AssumeRoleSource

#: Our own credentials for a configured role (the engine's), for roles chained off it.
RoleCredentials = Callable[[str], Awaitable[Credentials]]


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
    role_credentials: RoleCredentials,
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
        upstream = functools.partial(role_credentials, spec.source_role) if spec.source_role else None
        sources[name] = AssumeRoleSource(
            spec, clock, client_factory, upstream=upstream, mfa=mfa, chained=profiles.source_is_a_role(spec)
        )
    return sources, by_role
