"""What a failed fetch does to a role: it waits for input, or backs off (normal or cold cap),
and says so in one log line, not one per attempt."""

from __future__ import annotations

import logging
import random
from datetime import datetime

from imds_proxy.engine.credentials import Credentials, wire_time
from imds_proxy.engine.policy import RefreshPolicy, backoff_delay
from imds_proxy.engine.role_state import RoleState
from imds_proxy.errors import SourceError

log = logging.getLogger("imds_proxy.refresh")


def record_failure(
    role: RoleState,
    error: SourceError,
    current: Credentials | None,
    policy: RefreshPolicy,
    now: datetime,
    rng: random.Random,
) -> None:
    """Note `error` on `role` and set when it is tried again; `current` is what it still holds."""
    previous = role.last_error
    role.failures += 1
    role.last_error = error
    keeping = (
        f"serving the current credentials until {wire_time(current.expiration)}"
        if current
        else "no valid credentials to serve"
    )
    if error.needs_input:
        # Retrying on a timer cannot produce an MFA code: no backoff, no retry storm;
        # one log line when the role starts waiting, none per request.
        if not role.waiting:
            log.warning("role %s waits for input (%s): %s", role.name, keeping, error)
        role.waiting, role.retry_at = True, None
        return
    # A role's very first fetch is reported by whoever asked for it (the start-up
    # error line, or the request that gets the error document); later ones only here.
    level = logging.WARNING if role.fetches > 1 else logging.DEBUG
    if not error.retryable:
        # Asking again soon cannot change STS's mind (AccessDenied, no source keys): retry
        # at the backoff cap, held or not, and say so once, not at every attempt.
        delay = policy.backoff_cap
        role.retry_at = now + delay
        if previous is None or type(previous) is not type(error) or str(previous) != str(error):
            log.log(
                level,
                "refresh refused role=%s (%s): %s; not retryable, trying again every %.0fs",
                role.name,
                keeping,
                error,
                delay.total_seconds(),
            )
        return
    delay = backoff_delay(role.failures, policy, rng, holding=current is not None)
    if current is None:
        # Requests may retry once per cold_request_interval; the timer keeps to it as well, so
        # a role with nothing to serve never calls STS more often than that.
        delay = max(delay, policy.cold_request_interval)
    role.retry_at = now + delay
    log.log(
        level,
        "refresh failed role=%s attempt=%d retry_in=%.1fs (%s): %s",
        role.name,
        role.failures,
        delay.total_seconds(),
        keeping,
        error,
    )
