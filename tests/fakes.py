"""Fakes for tests: a clock that tests move and a credential source that counts its calls."""

from __future__ import annotations

import asyncio
import secrets
from collections.abc import Hashable
from datetime import UTC, datetime, timedelta
from types import SimpleNamespace
from typing import Any

from botocore.exceptions import ClientError

from imds_proxy.engine.credentials import Credentials
from imds_proxy.errors import SourceError

#: Every secret and session token any test has been handed; the log check looks for them.
ISSUED: set[str] = set()

ROLE_ARN = "arn:aws:iam::123456789012:role/test-role"


def remember(doc: dict[str, str]) -> dict[str, str]:
    """Register the secrets of a credential document a test received over the wire."""
    for key in ("SecretAccessKey", "Token"):
        if doc.get(key):
            ISSUED.add(doc[key])
    return doc


class FakeClock:
    """A wall clock that only moves when told (also usable as the token clock)."""

    def __init__(self, start: datetime | None = None) -> None:
        self.now = start or datetime(2026, 1, 1, 12, 0, tzinfo=UTC)

    def __call__(self) -> datetime:
        return self.now

    def seconds(self) -> float:
        return self.now.timestamp()

    def advance(self, **delta: float) -> None:
        self.now += timedelta(**delta)


class FakeSource:
    """Issues fresh credentials valid for `lifetime` from the clock's now; can be told to fail.
    `gate` (an Event) lets a test hold fetches open to pile up concurrent callers."""

    def __init__(
        self,
        clock: FakeClock,
        lifetime: timedelta = timedelta(hours=1),
        role_arn: str = ROLE_ARN,
        key_prefix: str = "ASIAFAKE",
    ) -> None:
        self.clock = clock
        self.lifetime = lifetime
        self.calls = 0
        self.fail_with: SourceError | None = None
        self.gate: asyncio.Event | None = None
        self._role_arn = role_arn
        self._key_prefix = key_prefix

    @property
    def role_arn(self) -> str:
        return self._role_arn

    @property
    def cache_key(self) -> Hashable:
        return (self._role_arn, id(self))

    @property
    def description(self) -> str:
        return "a fake source"

    #: Fakes chain off no role.
    upstream: str | None = None

    async def fetch(self) -> Credentials:
        self.calls += 1
        if self.gate is not None:
            await self.gate.wait()
        if self.fail_with is not None:
            raise self.fail_with
        secret, token = secrets.token_urlsafe(30), secrets.token_urlsafe(120)
        ISSUED.update((secret, token))
        now = self.clock()
        return Credentials(
            access_key_id=f"{self._key_prefix}{self.calls:012d}",
            secret_access_key=secret,
            session_token=token,
            expiration=now + self.lifetime,
            last_updated=now,
            role_arn=self._role_arn,
            account_id="123456789012",
        )


class FakeSts:
    """An STS client double at the boto3 boundary: records every call with the key that signed
    it, issues credentials that expire by the fake clock, and checks MFA codes like STS."""

    def __init__(
        self, clock: FakeClock, signer: str = "SOURCE", log: list[dict[str, Any]] | None = None
    ) -> None:
        self.clock = clock
        self.signer = signer
        self.log: list[dict[str, Any]] = [] if log is None else log
        self.meta = SimpleNamespace(region_name="us-east-1", endpoint_url="http://127.0.0.1:9")
        self.good_codes = {"123456", "654321"}
        self.used_codes: set[str] = set()
        #: GetSessionToken refuses temporary credentials (as AWS does).
        self.temporary = False
        self.role_lifetime = timedelta(hours=1)
        self.fail_assume: Exception | None = None
        #: Who GetCallerIdentity says the source credentials are.
        self.caller_arn = "arn:aws:iam::123456789012:user/source"
        self._shared: FakeSts = self

    def keyed(self, _base: object, access_key_id: str, _secret: str, _token: str) -> FakeSts:
        """The KeyedClientFactory: a client signing with other keys, sharing the log."""
        other = FakeSts(self.clock, access_key_id, self.log)
        other._shared = self._shared
        return other

    def calls(self, operation: str) -> list[dict[str, Any]]:
        return [c for c in self.log if c["operation"] == operation]

    def _issue(self, lifetime: timedelta, prefix: str) -> dict[str, Any]:
        secret, token = secrets.token_urlsafe(30), secrets.token_urlsafe(120)
        ISSUED.update((secret, token))
        n = len(self.log)
        return {
            "AccessKeyId": f"{prefix}{n:016d}",
            "SecretAccessKey": secret,
            "SessionToken": token,
            "Expiration": self.clock() + lifetime,
        }

    def _check_code(self, operation: str, code: str) -> None:
        shared = self._shared
        if code not in shared.good_codes or code in shared.used_codes:
            raise ClientError(
                {
                    "Error": {
                        "Code": "AccessDenied",
                        "Message": "MultiFactorAuthentication failed with invalid MFA one time pass code.",
                    }
                },
                operation,
            )
        shared.used_codes.add(code)

    def get_session_token(self, **params: Any) -> dict[str, Any]:
        self.log.append({"operation": "GetSessionToken", "signer": self.signer, **params})
        if self._shared.temporary and self.signer == "SOURCE":
            raise ClientError(
                {
                    "Error": {
                        "Code": "AccessDenied",
                        "Message": "Cannot call GetSessionToken with session credentials",
                    }
                },
                "GetSessionToken",
            )
        self._check_code("GetSessionToken", params["TokenCode"])
        return {"Credentials": self._issue(timedelta(seconds=params["DurationSeconds"]), "ASIASESSION")}

    def assume_role(self, **params: Any) -> dict[str, Any]:
        self.log.append({"operation": "AssumeRole", "signer": self.signer, **params})
        if self._shared.fail_assume is not None:
            raise self._shared.fail_assume
        if "TokenCode" in params:
            self._check_code("AssumeRole", params["TokenCode"])
        lifetime = min(self.role_lifetime, timedelta(seconds=params["DurationSeconds"]))
        return {
            "Credentials": self._issue(lifetime, "ASIAROLE"),
            "AssumedRoleUser": {
                "Arn": f"arn:aws:sts::123456789012:assumed-role/r/{params['RoleSessionName']}"
            },
        }

    def get_caller_identity(self) -> dict[str, Any]:
        self.log.append({"operation": "GetCallerIdentity", "signer": self.signer})
        arn = self._shared.caller_arn
        return {"Arn": arn, "Account": arn.split(":")[4], "UserId": "AIDAFAKE"}


class FakeIam:
    """An IAM client double for what moto cannot model: iam:SimulatePrincipalPolicy answers
    `decision` (or raises `refuse`, a ClientError code); iam:GetRole answers `role` or
    AccessDenied when it is None."""

    def __init__(self, decision: str = "allowed", role: dict[str, Any] | None = None) -> None:
        self.decision = decision
        self.role = role
        self.refuse: str | None = None
        self.calls: list[tuple[str, dict[str, Any]]] = []

    @staticmethod
    def _denied(operation: str, code: str = "AccessDenied") -> ClientError:
        return ClientError({"Error": {"Code": code, "Message": "not authorized"}}, operation)

    def get_role(self, **params: Any) -> dict[str, Any]:
        self.calls.append(("GetRole", params))
        if self.role is None:
            raise self._denied("GetRole")
        return {"Role": self.role}

    def simulate_principal_policy(self, **params: Any) -> dict[str, Any]:
        self.calls.append(("SimulatePrincipalPolicy", params))
        if self.refuse is not None:
            raise self._denied("SimulatePrincipalPolicy", self.refuse)
        return {"EvaluationResults": [{"EvalActionName": "sts:AssumeRole", "EvalDecision": self.decision}]}
