"""IAM enforcement for the sandbox's local AWS: moto's own checks, except that sts:AssumeRole is
judged here, on both sides, the way AWS judges it. Sandbox-only; imports moto.

Why not moto's AssumeRole check as it is (moto 5.2, moto/iam/access_control.py):
- it looks the role up in the *caller's* account, so a cross-account AssumeRole is never checked
  against the role's trust policy at all (any caller allowed by its own policy gets in);
- it matches an AWS principal as a string (an `arn:aws:iam::ACCOUNT:root` principal, which trusts
  the account, matches nobody; a string principal matches any substring of itself);
- a trust statement whose only principal is a Service (`{"Service": "ec2.amazonaws.com"}`, every
  instance profile role) raises TypeError inside moto: `principal in None`, an HTTP 500;
- both refusals read "User: X is not authorized to perform: sts:AssumeRole", so nobody can tell
  which side refused.

What this module does instead, for sts:AssumeRole only (moto still authenticates the request and
still judges every other action):
1. Caller side: the caller's identity-based policies (moto's evaluator) must allow sts:AssumeRole on
   the role and not deny it. A caller registered as a service stand-in skips this, as AWS services
   need no identity policy.
2. Role side: the role is looked up in its own account and its trust policy evaluated here: Action
   matched with wildcards, Principal `*`, AWS principals (user or role ARN, account id,
   `arn:aws:iam::ACCOUNT:root`), Service principals, and String* conditions on sts:ExternalId,
   aws:PrincipalArn, aws:PrincipalAccount and aws:PrincipalServiceName (moto's own condition check
   lets a request without an ExternalId through, and ignores operators it does not know; here a
   missing key fails the condition, as in AWS, and an unknown operator never grants).
   The Service workaround: AWS itself never shows a Service principal an AWS signature — EC2 assumes
   an instance profile's role internally. Here the sandbox creates an IAM user to stand in for EC2,
   registers it with `stand_in()`, and a caller signing with its key is matched against Service
   principals only (never against AWS principals), exactly as EC2 is.
3. Refusals use AWS's wording with the policy type AWS adds for requests inside one organization:
   "... on resource: ROLE because no identity-based policy allows the sts:AssumeRole action" (caller
   side) or "... no resource-based policy ..." (trust side), and "with an explicit deny in ...".
   Across organizations AWS omits that clause; imds-proxy's sts.classify handles both.
Not modelled: NotPrincipal, other condition keys and operators, permission boundaries, SCPs, session
policies, and AWS's rule that within
one account a trust policy naming a principal's ARN grants AssumeRole without the caller's own policy
(here, as in moto, the caller's side is always required).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable
from typing import Any

from moto import settings
from moto.core.authorization import ActionAuthenticatorMixin
from moto.core.exceptions import AccessDeniedError
from moto.iam import access_control
from moto.iam.access_control import IAMPolicy, IAMRequest, PermissionResult
from moto.iam.exceptions import NotFoundException
from moto.iam.models import iam_backends
from moto.iam.utils import format_incoming_conditional_values
from moto.utilities.utils import get_partition

from imds_proxy.aws.trust import ASSUME_ROLE, concerns_assume_role, listed, principal_matches
from imds_proxy.aws.trust import wildcard_match as _matches
from imds_proxy.config.arns import account_of

ALLOW, DENY, NEUTRAL = PermissionResult.PERMITTED, PermissionResult.DENIED, PermissionResult.NEUTRAL

#: IAM user ARN → the service principal that user stands in for (process-wide, like moto's settings).
_SERVICES: dict[str, str] = {}


def stand_in(user_arn: str, service: str) -> None:
    """Let callers signing with `user_arn`'s keys be judged as `service` by trust policies."""
    _SERVICES[user_arn] = service


def enforce() -> None:
    """Turn IAM enforcement on for every later request to the in-process moto server.
    Process-wide: moto keeps both the switch and its request counter in globals."""
    access_control.IAMRequest = AssumeRoleRequest  # type: ignore[misc]  # imported by name per request
    settings.INITIAL_NO_AUTH_ACTION_COUNT = 0
    ActionAuthenticatorMixin.request_count = 0


_STRING_TESTS: dict[str, Callable[[str, list[Any]], bool]] = {
    "StringEquals": lambda actual, expected: actual in map(str, expected),
    "StringNotEquals": lambda actual, expected: actual not in map(str, expected),
    "StringEqualsIgnoreCase": lambda actual, expected: actual.lower() in (str(e).lower() for e in expected),
    "StringLike": lambda actual, expected: _matches(expected, actual, ignore_case=False),
    "StringNotLike": lambda actual, expected: not _matches(expected, actual, ignore_case=False),
}


def conditions_hold(conditions: dict[str, Any], context: dict[str, str]) -> bool:
    """AWS's rules for a Condition block: every operator and key must hold; a key missing from the
    request fails it, except for negated operators and `...IfExists`; unknown operators fail."""
    known = {k.lower(): v for k, v in context.items()}
    for operator, tests in conditions.items():
        base = operator.removesuffix("IfExists")
        for key, expected in (tests or {}).items():
            actual = known.get(key.lower())
            if base == "Null":
                holds = (actual is None) == (str(expected).lower() == "true")
            elif base not in _STRING_TESTS:
                holds = False
            elif actual is None:
                holds = operator.endswith("IfExists") or "Not" in base
            else:
                holds = _STRING_TESTS[base](actual, listed(expected))
            if not holds:
                return False
    return True


def trust_decision(
    document: str, caller: str, service: str | None, context: dict[str, str] | None = None
) -> PermissionResult:
    """ALLOW when a statement allows sts:AssumeRole to the caller, DENY when one denies it.
    `context` holds the request's condition keys (e.g. sts:ExternalId)."""
    doc = json.loads(document)
    result = NEUTRAL
    for st in listed(doc.get("Statement")):
        if not concerns_assume_role(st) or not principal_matches(st.get("Principal"), caller, service):
            continue
        if not conditions_hold(st.get("Condition") or {}, context or {}):
            continue
        if st.get("Effect") == "Deny":
            return DENY
        result = ALLOW
    return result


def identity_decision(policies: Iterable[Any], role_arn: str) -> PermissionResult:
    """The caller's identity-based policies on sts:AssumeRole for role_arn (moto's evaluator)."""
    result = NEUTRAL
    for policy in policies:
        verdict = IAMPolicy(policy).is_action_permitted(ASSUME_ROLE, role_arn)
        if verdict == DENY:
            return DENY
        if verdict == ALLOW:
            result = ALLOW
    return result


class AssumeRoleRequest(IAMRequest):
    """moto's IAMRequest, with sts:AssumeRole decided by this module (see the module docstring)."""

    def check_action_permitted(self, resource: str) -> None:
        if self._action != ASSUME_ROLE:
            super().check_action_permitted(resource)
            return
        caller: str = self._access_key.arn
        service = _SERVICES.get(caller)
        shown = service or caller
        if service is None:
            identity = identity_decision(self._access_key.collect_policies(), resource)
            if identity == DENY:
                self._refuse(shown, resource, "with an explicit deny in an identity-based policy")
            if identity == NEUTRAL:
                self._refuse(
                    shown, resource, f"because no identity-based policy allows the {ASSUME_ROLE} action"
                )
        trust = NEUTRAL
        try:
            role = iam_backends[account_of(resource)][get_partition(self._region)].get_role_by_arn(resource)
        except (NotFoundException, KeyError):
            role = None  # AWS answers AccessDenied for a role that does not exist, too
        if role is not None:
            context = format_incoming_conditional_values(self._data)  # sts:ExternalId
            if service is None:
                context |= {"aws:PrincipalArn": caller, "aws:PrincipalAccount": account_of(caller)}
            else:
                context["aws:PrincipalServiceName"] = service
            trust = trust_decision(role.assume_role_policy_document, caller, service, context)
        if trust == DENY:
            self._refuse(shown, resource, "with an explicit deny in a resource-based policy")
        if trust == NEUTRAL:
            self._refuse(shown, resource, f"because no resource-based policy allows the {ASSUME_ROLE} action")

    @staticmethod
    def _refuse(caller: str, role_arn: str, why: str) -> None:
        # AccessDeniedError renders "User: {user_arn} is not authorized to perform: {action}".
        raise AccessDeniedError(user_arn=caller, action=f"{ASSUME_ROLE} on resource: {role_arn} {why}")
