"""boto3-backed Sources: AssumeRole (profiles, chaining, MFA) and AssumeRoleWithWebIdentity
through STS, always off the event loop. The only boto3 importer."""

from __future__ import annotations

import asyncio
import functools
import logging
import re
from collections.abc import Awaitable, Callable, Hashable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

import boto3
import botocore.exceptions as bce
from botocore import UNSIGNED
from botocore.config import Config as BotoConfig

from imds_proxy import profiles
from imds_proxy.config import Config
from imds_proxy.credentials import Clock, Credentials, account_of, key_suffix, wire_time
from imds_proxy.errors import (
    AssumeRoleDenied,
    CredentialsUnavailable,
    DurationTooLong,
    MfaRequired,
    SourceCredentialsInvalid,
    SourceCredentialsMissing,
    SourceError,
)
from imds_proxy.mfa import MfaSession, SessionKeys
from imds_proxy.roles import RoleSpec

if TYPE_CHECKING:
    from mypy_boto3_sts import STSClient
else:
    STSClient = Any

log = logging.getLogger("imds_proxy.sts")

#: STS answers in well under a second; a stuck connection must not hold a refresh forever.
#: botocore's own retries cover throttling and transient errors (standard mode, 3 attempts).
_BOTO_CONFIG = BotoConfig(connect_timeout=5, read_timeout=10, retries={"mode": "standard", "max_attempts": 3})
#: AssumeRoleWithWebIdentity is not signed: the token is the proof.
_UNSIGNED_CONFIG = _BOTO_CONFIG.merge(BotoConfig(signature_version=UNSIGNED))
#: STS caps sessions assumed with role credentials ("role chaining") at one hour.
CHAINED_MAX_DURATION = 3600
_INVALID_SOURCE = {
    "InvalidClientTokenId",
    "SignatureDoesNotMatch",
    "ExpiredToken",
    "ExpiredTokenException",
    "UnrecognizedClientException",
    "InvalidAccessKeyId",
}
#: STS's refusals of a web identity token; the token file is re-read at the next attempt.
_BAD_WEB_TOKEN = {
    "InvalidIdentityToken",
    "ExpiredTokenException",
    "IDPRejectedClaim",
    "IDPCommunicationError",
}

ClientFactory = Callable[[RoleSpec], STSClient]
#: "User: arn:aws:iam::111122223333:user/Bob is not authorized to perform: ..." (AWS and moto).
_CALLER = re.compile(r"User: (\S+) is not authorized to perform")
#: A client like the first (same endpoint, region) signing with the keys given.
KeyedClientFactory = Callable[[STSClient, str, str, str], STSClient]
#: Our own credentials for a configured role (the engine's), for roles chained off it.
RoleCredentials = Callable[[str], Awaitable[Credentials]]


def default_client(spec: RoleSpec) -> STSClient:
    """An STS client on the role's source credentials (profiles.sts_session). Regional
    endpoint when a region is set (protocol.md §6)."""
    try:
        session = boto3.Session(botocore_session=profiles.sts_session(spec))
        region = spec.region or session.region_name or "us-east-1"
    except bce.ProfileNotFound:
        raise SourceCredentialsMissing(
            f"source profile {spec.source_profile!r} is not in the AWS config files; "
            "check --source-profile or AWS_CONFIG_FILE"
        ) from None
    config = _UNSIGNED_CONFIG if spec.web_identity_token_file else _BOTO_CONFIG
    return session.client("sts", region_name=region, endpoint_url=spec.sts_endpoint_url, config=config)


def client_like(base: STSClient, access_key_id: str, secret: str, token: str) -> STSClient:
    """A client to the same STS endpoint and region as `base`, signing with the keys given
    (an MFA session's, or the keys of the role a chained role is assumed from)."""
    session = boto3.Session(botocore_session=profiles.explicit_session())
    return session.client(
        "sts",
        region_name=base.meta.region_name,
        endpoint_url=base.meta.endpoint_url,
        aws_access_key_id=access_key_id,
        aws_secret_access_key=secret,
        aws_session_token=token,
        config=_BOTO_CONFIG,
    )


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


def classify(error: Exception, spec: RoleSpec) -> SourceError:
    """Turn a botocore failure into one of our error types, with AWS's message passed on."""
    role = spec.role_arn
    if isinstance(error, bce.NoCredentialsError | bce.PartialCredentialsError):
        where = f"profile {spec.source_profile!r}" if spec.source_profile else "boto3's default chain"
        return SourceCredentialsMissing(
            f"no credentials to call STS with (looked in {where}); configure AWS credentials "
            "(aws configure, AWS_PROFILE, or --source-profile)"
        )
    if isinstance(error, bce.SSOError | bce.TokenRetrievalError):
        login = f"aws sso login --profile {spec.source_profile}" if spec.source_profile else "aws sso login"
        return SourceCredentialsInvalid(
            f"the SSO session behind the source credentials is not usable ({error}); run `{login}`"
        )
    if isinstance(error, bce.ProfileNotFound | bce.CredentialRetrievalError | bce.InvalidConfigError):
        return SourceCredentialsMissing(f"cannot load our own credentials: {error}")
    if isinstance(error, bce.EndpointConnectionError | bce.ConnectTimeoutError | bce.ReadTimeoutError):
        return SourceError(f"cannot reach STS ({error}); check the network or --region")
    if not isinstance(error, bce.ClientError):
        return SourceError(f"AssumeRole {role} failed: {type(error).__name__}: {error}")
    code = error.response.get("Error", {}).get("Code", "Unknown")
    message = error.response.get("Error", {}).get("Message", "")
    aws = f"(AWS says: {code}: {message})"
    if spec.web_identity_token_file and code in _BAD_WEB_TOKEN:
        return SourceError(
            f"STS refused the web identity token in {spec.web_identity_token_file} {aws}; "
            "it is read again at the next attempt"
        )
    if code in _INVALID_SOURCE:
        return SourceCredentialsInvalid(
            f"STS rejected our own credentials {aws}; refresh or replace the source credentials"
        )
    if code == "AccessDenied" and spec.mfa_serial and "multifactor" in message.lower().replace(" ", ""):
        return MfaRequired(
            f"STS refused the MFA code for {spec.mfa_serial} {aws}; run `imds-proxy mfa` with a fresh code"
        )
    if code == "AccessDenied":
        return _denied(message, spec, aws)
    if code == "ValidationError" and "DurationSeconds" in message:
        return DurationTooLong(
            f"duration {spec.duration}s is above the MaxSessionDuration of role {role} {aws}; lower "
            f"duration to the role's maximum (`aws iam get-role --role-name {spec.name} --query "
            "Role.MaxSessionDuration` shows it; 3600 unless raised)"
        )
    if code == "RegionDisabledException":
        err = SourceError(f"STS is not activated in this region {aws}; pick another --region")
        err.retryable = False
        return err
    return SourceError(f"AssumeRole {role} failed {aws}")


def _denied(message: str, spec: RoleSpec, aws: str) -> AssumeRoleDenied:
    """Name which side refused. AWS's message says it (the policy type) for requests inside one
    account or organization, and so does the sandbox's local AWS; otherwise we list what can refuse."""
    role = spec.role_arn
    text = message.lower()
    named = _CALLER.match(message)
    who = named.group(1) if named else "the caller"
    if "identity-based policy" in text:
        if "explicit deny" in text:
            why = f"a Deny in the permissions policy of {who} refuses sts:AssumeRole on {role}: remove it"
        else:
            caller = f"the caller ({who})" if named else who
            why = (
                f"{caller} is not allowed sts:AssumeRole on {role}: add it to the caller's permissions policy"
            )
    elif "resource-based policy" in text or "trust" in text:
        if "explicit deny" in text:
            why = f"the trust policy of {role} denies {who}: remove that Deny"
        else:
            why = f"the trust policy of {role} does not trust {who}: add it as a principal"
    elif "multifactor" in text or "mfa" in text:
        why = f"{role} requires MFA: set mfa_serial for it"
    elif spec.external_id:
        why = (
            f"AssumeRole {role} was refused: check that the ExternalId matches the role's trust "
            "policy, that the trust policy trusts the caller, and that the caller is allowed sts:AssumeRole"
        )
    else:
        why = (
            f"AssumeRole {role} was refused: either the caller is not allowed sts:AssumeRole on it, "
            "or its trust policy does not trust the caller (or requires an ExternalId or MFA)"
        )
    return AssumeRoleDenied(f"{why} {aws}")


def _is_chaining_limit(error: bce.ClientError) -> bool:
    # "The requested DurationSeconds exceeds the 1 hour session limit for roles assumed by role chaining."
    err = error.response.get("Error", {})
    return err.get("Code") == "ValidationError" and "chaining" in err.get("Message", "")


class AssumeRoleSource:
    """One role, assumed on our schedule with every parameter its spec sets.

    Where the keys that call STS come from: the client factory (source profile, profile,
    credential_source, default chain); or another configured role (`upstream`, role
    chaining); or nothing (web identity, unsigned). With `mfa`, an MFA-backed session
    (GetSessionToken) stands between the source and AssumeRole; without a code it raises
    MfaRequired instead of waiting. boto3 clients are made once per set of keys (clients
    are thread-safe, sessions are not) and every STS call runs in a worker thread.
    """

    def __init__(
        self,
        spec: RoleSpec,
        clock: Clock,
        client_factory: ClientFactory = default_client,
        *,
        upstream: Callable[[], Awaitable[Credentials]] | None = None,
        mfa: MfaSession | None = None,
        chained: bool = False,
        keyed_client: KeyedClientFactory = client_like,
    ) -> None:
        self.spec = spec
        self._clock = clock
        self._factory = client_factory
        self._keyed_client = keyed_client
        self._upstream = upstream
        self.mfa = mfa
        self._client: STSClient | None = None
        self._signed: tuple[str, STSClient] | None = None  # keys we sign with → their client
        #: MFA goes straight into AssumeRole: GetSessionToken refuses temporary credentials.
        self._mfa_direct = upstream is not None
        self.duration = spec.duration
        if chained:
            self._clamp("its source credentials are role credentials (role chaining)")

    @property
    def role_arn(self) -> str:
        return self.spec.role_arn

    @property
    def cache_key(self) -> Hashable:
        return self.spec

    def _clamp(self, why: str) -> None:
        if self.duration > CHAINED_MAX_DURATION:
            log.warning(
                "role %s: %s, which STS caps at %d s: asking for %d s instead of the configured %d s",
                self.spec.role_arn,
                why,
                CHAINED_MAX_DURATION,
                CHAINED_MAX_DURATION,
                self.duration,
            )
            self.duration = CHAINED_MAX_DURATION

    async def fetch(self) -> Credentials:
        upstream = None
        if self._upstream is not None:
            try:
                upstream = await self._upstream()
            except CredentialsUnavailable as e:
                err = SourceError(f"source role {self.spec.source_role} has no credentials: {e.cause or e}")
                err.needs_input = e.cause is not None and e.cause.needs_input
                raise err from None
        return await asyncio.to_thread(self._fetch, upstream)

    def _fetch(self, upstream: Credentials | None) -> Credentials:
        spec = self.spec
        try:
            if self._client is None:
                self._client = self._factory(spec)
            if spec.web_identity_token_file:
                answer = self._web_identity(self._client, Path(spec.web_identity_token_file))
                call = "AssumeRoleWithWebIdentity"
            else:
                client = self._client
                if upstream is not None:
                    client = self._signing(
                        upstream.access_key_id, upstream.secret_access_key, upstream.session_token
                    )
                answer = self._assume_role(client)
                call = "AssumeRole"
        except SourceError:
            raise
        except Exception as e:  # botocore's errors, mapped; nothing of ours is secret here
            raise classify(e, spec) from None
        c = answer["Credentials"]
        log.info(
            "%s role=%s session=%s key=%s expires=%s",
            call,
            spec.role_arn,
            spec.session_name,
            key_suffix(c["AccessKeyId"]),
            wire_time(c["Expiration"]),
        )
        return Credentials(
            access_key_id=c["AccessKeyId"],
            secret_access_key=c["SecretAccessKey"],
            session_token=c["SessionToken"],
            expiration=c["Expiration"],
            last_updated=self._clock(),
            role_arn=spec.role_arn,
            account_id=account_of(answer["AssumedRoleUser"]["Arn"]) or spec.account_id,
        )

    def _signing(self, access_key_id: str, secret: str, token: str) -> STSClient:
        """The client that signs with these keys (made again only when they change)."""
        if self._signed is None or self._signed[0] != access_key_id:
            assert self._client is not None
            self._signed = (access_key_id, self._keyed_client(self._client, access_key_id, secret, token))
        return self._signed[1]

    def _web_identity(self, client: STSClient, path: Path) -> Mapping[str, Any]:
        # Read at every refresh: CI and Kubernetes rotate the token in place.
        try:
            token = path.read_text().strip()
        except OSError as e:
            raise SourceError(f"cannot read the web identity token file {path} ({e.strerror})") from None
        if not token:
            raise SourceError(f"the web identity token file {path} is empty")
        return client.assume_role_with_web_identity(**web_identity_params(self.spec, self.duration, token))

    def _assume_role(self, client: STSClient) -> Mapping[str, Any]:
        params = assume_role_params(self.spec, self.duration)
        if self.mfa is not None:
            client, mfa_params = self._through_mfa(client, self.mfa)
            params.update(mfa_params)
        try:
            answer = client.assume_role(**params)
        except bce.ClientError as e:
            if not (self.duration > CHAINED_MAX_DURATION and _is_chaining_limit(e)):
                raise
            self._clamp("STS says its source credentials are role credentials (role chaining)")
            params["DurationSeconds"] = self.duration
            answer = client.assume_role(**params)
        if self.mfa is not None and "TokenCode" in params:
            self.mfa.opened(None, answer["Credentials"]["Expiration"])
        return answer

    def _through_mfa(self, client: STSClient, mfa: MfaSession) -> tuple[STSClient, dict[str, str]]:
        """The client and extra parameters for an AssumeRole that needs MFA: an MFA session's
        client, or (temporary source credentials) the code itself."""
        keys = mfa.usable_keys(self._clock())
        code = mfa.take_code()  # a code someone just gave wins over a session still valid
        if code is None and keys is None:
            code = mfa.obtain_code()
        if code is None:
            if keys is not None:
                return self._signing(keys.access_key_id, keys.secret_access_key, keys.session_token), {}
            raise MfaRequired(
                f"role {self.spec.name} needs an MFA code for {mfa.serial}: {mfa.command_hint()}"
            )
        if not self._mfa_direct:
            try:
                answer = client.get_session_token(
                    SerialNumber=mfa.serial, TokenCode=code, DurationSeconds=mfa.duration
                )
            except bce.ClientError as e:
                if "with session credentials" not in e.response.get("Error", {}).get("Message", ""):
                    raise
                log.info(
                    "MFA %s: the source credentials are temporary; giving codes to AssumeRole", mfa.serial
                )
                self._mfa_direct = True
            else:
                c = answer["Credentials"]
                keys = SessionKeys(c["AccessKeyId"], c["SecretAccessKey"], c["SessionToken"], c["Expiration"])
                mfa.opened(keys, keys.expiration)
                log.info(
                    "GetSessionToken serial=%s key=%s expires=%s",
                    mfa.serial,
                    key_suffix(keys.access_key_id),
                    wire_time(keys.expiration),
                )
                return self._signing(keys.access_key_id, keys.secret_access_key, keys.session_token), {}
        return client, {"SerialNumber": mfa.serial, "TokenCode": code}


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
