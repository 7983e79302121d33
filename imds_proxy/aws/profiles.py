"""~/.aws/config profiles through botocore's own config loading: a role profile's settings as
our role keys, and the botocore session whose credentials call STS for a role.

botocore resolves the *source* (static keys, credential_process, SSO, web identity, another
role); the final AssumeRole of the served role is ours, so our cache and refresh-ahead apply.
"""

from __future__ import annotations

from typing import Any

import botocore.exceptions as bce
import botocore.session
from botocore.credentials import (
    CanonicalNameCredentialSourcer,
    CredentialProvider,
    CredentialResolver,
    Credentials,
)

from imds_proxy.aws import loader
from imds_proxy.config.roles import DEFAULT_REGION, RoleSpec
from imds_proxy.errors import ConfigError, SourceCredentialsMissing

#: Profile setting → our role key (botocore's names, as in `aws configure` docs).
PROFILE_KEYS = {
    "role_arn": "role_arn",
    "source_profile": "source_profile",
    "credential_source": "credential_source",
    "external_id": "external_id",
    "duration_seconds": "duration",
    "role_session_name": "role_session_name",
    "mfa_serial": "mfa_serial",
    "web_identity_token_file": "web_identity_token_file",
    "region": "region",
}
#: A source profile with any of these hands out role credentials, so assuming a role from it
#: is role chaining (STS caps the session at one hour).
_ROLE_PROFILE_KEYS = ("role_arn", "web_identity_token_file", "sso_session", "sso_start_url", "sso_role_name")
#: credential_source values that give role credentials (instance profile, task role).
_ROLE_CREDENTIAL_SOURCES = ("Ec2InstanceMetadata", "EcsContainer")
#: botocore's provider METHOD names behind each credential_source.
_SOURCE_METHODS = ("env", "container-role", "iam-role")
#: A session blind to AWS_PROFILE, for clients whose settings are all given explicitly.
_NO_PROFILE: dict[str, tuple[Any, Any, Any, Any]] = {"profile": (None, None, None, None)}


def _all_profiles() -> tuple[dict[str, dict[str, Any]], str]:
    session = loader.session(session_vars=_NO_PROFILE)
    path = str(session.get_config_variable("config_file"))
    try:
        profiles: dict[str, dict[str, Any]] = session.full_config.get("profiles", {})
    except bce.ConfigParseError as e:
        raise ConfigError("profile", f"cannot parse the AWS config file ({e})", f"fix {path}") from None
    return profiles, path


def read_profile(name: str) -> dict[str, Any]:
    """A role profile as our role keys (with `profile` itself). Raises ConfigError, naming
    the file, when the profile is missing or does not describe a role."""
    profiles, path = _all_profiles()
    if name not in profiles:
        known = ", ".join(sorted(profiles)) or "none"
        raise ConfigError("profile", f"{name!r} is not in {path} (profiles there: {known})", "check the name")
    profile = profiles[name]
    if "role_arn" not in profile:
        raise ConfigError(
            "profile",
            f"profile {name!r} has no role_arn",
            f"add a role profile with role_arn and source_profile = {name}, and serve that one",
        )
    values: dict[str, Any] = {
        key: profile[setting] for setting, key in PROFILE_KEYS.items() if setting in profile
    }
    if not any(k in values for k in ("source_profile", "credential_source", "web_identity_token_file")):
        raise ConfigError(
            "profile",
            f"profile {name!r} has role_arn but no source_profile, credential_source "
            "or web_identity_token_file",
            "say where the credentials that assume the role come from",
        )
    source = values.get("source_profile")
    if source is not None and source not in profiles:
        raise ConfigError(
            "profile",
            f"profile {name!r} names source_profile {source!r}, which is not in {path}",
            "add that profile or fix the name",
        )
    values["profile"] = name
    return values


def source_is_a_role(spec: RoleSpec) -> bool:
    """Whether the credentials that assume this role are themselves role credentials (role
    chaining). Unknown sources (the default chain, credential_process) count as not."""
    if spec.source_role or spec.credential_source in _ROLE_CREDENTIAL_SOURCES:
        return True
    if spec.source_profile is None or spec.source_profile == spec.profile:
        return False
    profiles, _ = _all_profiles()
    return any(key in profiles.get(spec.source_profile, {}) for key in _ROLE_PROFILE_KEYS)


class _Given(CredentialProvider):
    """Hands botocore credentials resolved elsewhere (they may refresh themselves)."""

    METHOD = "imds-proxy-source"

    def __init__(self, credentials: Credentials | None) -> None:
        self._credentials = credentials

    def load(self) -> Credentials | None:
        return self._credentials


def _with_credentials(
    session: botocore.session.Session, creds: Credentials | None
) -> botocore.session.Session:
    session.register_component("credential_provider", CredentialResolver(providers=[_Given(creds)]))
    return session


def _source_credentials(spec: RoleSpec) -> Credentials | None:
    """What calls STS for a role read from a profile, resolved by botocore."""
    if spec.credential_source is not None:
        base = loader.session(session_vars=_NO_PROFILE)
        resolver = base.get_component("credential_provider")
        sourcer = CanonicalNameCredentialSourcer([resolver.get_provider(m) for m in _SOURCE_METHODS])
        return sourcer.source_credentials(spec.credential_source)
    if spec.source_profile is not None and spec.source_profile == spec.profile:
        # A profile may name itself to take its own static keys (botocore allows it).
        profile = _all_profiles()[0].get(spec.profile, {})
        if "aws_access_key_id" not in profile:
            return None
        return Credentials(
            profile["aws_access_key_id"],
            profile.get("aws_secret_access_key", ""),
            profile.get("aws_session_token"),
        )
    source = loader.session(profile=spec.source_profile)
    if source.get_config_variable("region") is None:
        # botocore's own STS calls in the chain (a source profile that is itself a role)
        # need a region; ours is the one the served role uses.
        source.set_config_variable("region", spec.region or DEFAULT_REGION)
    return source.get_credentials()


def sts_session(spec: RoleSpec) -> botocore.session.Session:
    """The botocore session that makes this role's STS client: its credentials are the role's
    source; its settings (region, `services` endpoint_url) are the role profile's, or, for a
    role not read from a profile, the source profile's (or the default ones)."""
    try:
        if spec.web_identity_token_file is not None or spec.source_role is not None:
            # The call is unsigned (web identity) or signed with our own role's keys: no chain.
            settings = loader.session(profile=spec.profile) if spec.profile else _blank()
            return _with_credentials(settings, None)
        if spec.profile is not None:
            return _with_credentials(
                loader.session(profile=spec.profile), _source_credentials(spec)
            )
        if spec.credential_source is not None:
            return _with_credentials(_blank(), _source_credentials(spec))
        return loader.session(profile=spec.source_profile)
    except bce.ProfileNotFound as e:
        raise SourceCredentialsMissing(f"{e}; check the profile names in AWS_CONFIG_FILE") from None


def _blank() -> botocore.session.Session:
    return loader.session(session_vars=_NO_PROFILE)


def explicit_session() -> botocore.session.Session:
    """A session for clients given every setting and key explicitly (AWS_PROFILE ignored)."""
    return _blank()
