"""AssumeRoleSource: one role assumed through STS with every parameter its spec sets — from
source credentials, another role's (chaining), an MFA session or a web identity token — always
in a worker thread."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Hashable, Mapping
from pathlib import Path
from typing import Any

import botocore.exceptions as bce

from imds_proxy.aws.sts.clients import (
    ClientFactory,
    KeyedClientFactory,
    STSClient,
    client_like,
    default_client,
)
from imds_proxy.aws.sts.errors import classify
from imds_proxy.aws.sts.params import assume_role_params, web_identity_params
from imds_proxy.config.arns import account_of
from imds_proxy.config.roles import RoleSpec
from imds_proxy.engine.credentials import Clock, Credentials, key_suffix, wire_time
from imds_proxy.engine.mfa import MfaSession, SessionKeys
from imds_proxy.errors import MfaRequired, SourceCredentialsInvalid, SourceError

log = logging.getLogger("imds_proxy.sts")

#: STS caps sessions assumed with role credentials ("role chaining") at one hour.
CHAINED_MAX_DURATION = 3600


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
    MfaRequired instead of waiting. botocore clients are made once per set of keys (clients
    are thread-safe, sessions are not) and every STS call runs in a worker thread.
    """

    def __init__(
        self,
        spec: RoleSpec,
        clock: Clock,
        client_factory: ClientFactory = default_client,
        *,
        mfa: MfaSession | None = None,
        chained: bool = False,
        keyed_client: KeyedClientFactory = client_like,
    ) -> None:
        self.spec = spec
        self._clock = clock
        self._factory = client_factory
        self._keyed_client = keyed_client
        self.mfa = mfa
        self._client: STSClient | None = None
        self._signed: tuple[str, STSClient] | None = None  # keys we sign with → their client
        #: MFA goes straight into AssumeRole: GetSessionToken refuses temporary credentials.
        self._mfa_direct = spec.source_role is not None
        self.duration = spec.duration
        if chained:
            self._clamp("its source credentials are role credentials (role chaining)")

    @property
    def role_arn(self) -> str:
        return self.spec.role_arn

    @property
    def cache_key(self) -> Hashable:
        return self.spec

    @property
    def description(self) -> str:
        return self.spec.source_description

    @property
    def upstream(self) -> str | None:
        """The configured role this one is chained off: the engine hands us its credentials."""
        return self.spec.source_role

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

    async def fetch(self, upstream: Credentials | None = None) -> Credentials:
        if self.spec.source_role is not None and upstream is None:
            raise SourceError(f"role {self.spec.name} is chained off {self.spec.source_role}: none given")
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
        except (bce.BotoCoreError, bce.ClientError) as e:  # botocore's errors, mapped
            error = classify(e, spec)
            if isinstance(error, SourceCredentialsInvalid):
                self._forget_keys()
            raise error from None
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

    def _forget_keys(self) -> None:
        """STS says the keys we signed with are invalid or expired: build the clients again at
        the next attempt, so keys rotated on disk (or a renewed SSO or MFA session) are read
        again instead of failing every refresh until a restart."""
        self._client = None
        self._signed = None
        if self.mfa is not None:
            self.mfa.forget()

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
        if self.mfa is None:
            return self._assume_role_with(client, {})
        with self.mfa.flight:  # one role at a time opens (or uses) the shared session
            client, mfa_params = self._through_mfa(client, self.mfa)
            return self._assume_role_with(client, mfa_params)

    def _assume_role_with(self, client: STSClient, mfa_params: Mapping[str, str]) -> Mapping[str, Any]:
        params = assume_role_params(self.spec, self.duration)
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
