"""The credential engine: per-role cache, single-flight fetches, refresh ahead, keep-last-good, backoff."""

from __future__ import annotations

import asyncio
import logging
import random
import time
from collections.abc import Awaitable, Callable, Hashable, Iterable, Mapping
from datetime import datetime

from cachetools import TLRUCache

from imds_proxy.engine.credentials import Clock, Credentials, Served, Source, wire_time
from imds_proxy.engine.failures import record_failure
from imds_proxy.engine.observe import SUCCESS, EngineObserver, NoObserver
from imds_proxy.engine.policy import RefreshPolicy, refresh_at, serve_floor
from imds_proxy.engine.refresh_loop import RefreshLoop
from imds_proxy.engine.role_state import RoleState, RoleStatus
from imds_proxy.errors import CredentialsUnavailable, SourceError

log = logging.getLogger("imds_proxy.refresh")


class CredentialEngine(RefreshLoop):
    """Serves each role's credentials from a cache and keeps them fresh.

    Guarantees: while the source answers, every credential returned has at least
    `serve_floor` left; concurrent callers share one fetch; expired credentials are never
    returned; after a failure the source is not called again before the backoff ends.
    Expiry is judged by the injected wall clock at every call, not only by the timer.
    A source that fails with an error that `needs_input` (no MFA code) is not called again,
    by the timer or by requests, until `wake` says the input has arrived.
    """

    def __init__(
        self,
        sources: Mapping[str, Source],
        policy: RefreshPolicy,
        clock: Clock,
        rng: random.Random | None = None,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
        observer: EngineObserver | None = None,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self._roles = _states(sources, {})
        self._observer: EngineObserver = observer or NoObserver()
        self._monotonic = monotonic
        self._policy = policy
        self._clock = clock
        self._rng = rng or random.Random()
        self._sleep = sleep
        self._cache = self._new_cache()

    def _new_cache(self) -> TLRUCache[Hashable, Served]:
        margin = self._policy.expiry_margin
        # cachetools drops an entry once our clock passes its expiry (less the margin), so a
        # lookup can never hand out expired credentials, whatever the timer did meanwhile.
        return TLRUCache(
            maxsize=max(16, 2 * len(self._roles)),
            ttu=lambda _key, served, _now: (served.credentials.expiration - margin).timestamp(),
            timer=lambda: self._clock().timestamp(),
        )

    def observe(self, observer: EngineObserver) -> None:
        """From now on, report every source call to `observer` (the daemon's metrics)."""
        self._observer = observer

    def update(self, sources: Mapping[str, Source]) -> None:
        """Serve these roles from now on (a reload): a role whose source has the same
        cache_key keeps its state and cached credentials; others start afresh; roles not in
        `sources` are dropped. Fetches in flight for dropped or changed roles finish unseen."""
        roles = _states(sources, self._roles)
        kept = {role.key for role in roles.values()}
        previous, self._roles = self._cache, roles
        self._cache = self._new_cache()  # sized for the new roles
        for key, served in previous.items():
            if key in kept:
                self._cache[key] = served

    @property
    def role_names(self) -> tuple[str, ...]:
        return tuple(self._roles)

    def __contains__(self, name: object) -> bool:
        return name in self._roles

    @property
    def policy(self) -> RefreshPolicy:
        return self._policy

    def _held(self, role: RoleState) -> Credentials | None:
        served = self._cache.get(role.key)
        return served.credentials if served is not None else None

    def cached(self, name: str) -> Credentials | None:
        """The valid cached credentials for a role, if any (no fetch)."""
        return self._held(self._roles[name])

    async def get(self, name: str, *, patient: bool = False) -> Credentials:
        """Credentials for `name` that are not expired, as `served` gives them, or (`patient`:
        priming, chaining) waiting for STS as long as it takes; raises CredentialsUnavailable."""
        return (await self._serve(name, bounded=not patient)).credentials

    async def served(self, name: str) -> Served:
        """What a request is served for `name`: credentials that are not expired, with their
        response bodies, waiting for STS at most `stale_wait` (valid ones held) or `cold_wait`
        (none); raises CredentialsUnavailable."""
        return await self._serve(name, bounded=True)

    def ready(self, name: str) -> Served | None:
        """What `served` returns when it need not wait (a refresh that is due starts in the
        background); None: await `served`. The request path's common case, with no await."""
        role = self._roles[name]
        now = self._clock()
        if role.hot is not None and now < role.hot[1]:
            return role.hot[0]  # what the checks below would return, and nothing due
        served = self._cache.get(role.key)
        if served is not None:
            creds = served.credentials
            if creds.remaining(now) >= serve_floor(creds, self._policy):
                if now >= refresh_at(creds, self._policy) and self._may_call(role, now, holding=True):
                    self._flight(role)
                return served
        return None

    async def _serve(self, name: str, *, bounded: bool) -> Served:
        ready = self.ready(name)
        if ready is not None:
            return ready
        role = self._roles[name]
        now = self._clock()
        served = self._cache.get(role.key)
        # Missing, or too close to expiry (e.g. the first request after a laptop slept):
        # wait for fresh ones unless the source is backing off after a failure, and never
        # longer than an SDK waits for IMDS: one that times out gets nothing at all.
        if self._may_call(role, now, holding=served is not None):
            wait = self._policy.stale_wait if served is not None else self._policy.cold_wait
            try:
                return await asyncio.wait_for(
                    asyncio.shield(self._flight(role)), wait.total_seconds() if bounded else None
                )
            except (SourceError, TimeoutError):
                pass
        served = self._cache.get(role.key)
        if served is not None:
            return served  # keep the last good credentials while they are valid
        raise CredentialsUnavailable(name, role.last_error)

    def _may_call(self, role: RoleState, now: datetime, *, holding: bool) -> bool:
        if role.flight is not None and not role.flight.done():
            return True  # joining the fetch in flight costs STS nothing
        if role.waiting:
            return False
        if role.retry_at is None or now >= role.retry_at:
            return True
        # Nothing valid held and STS failing transiently: every caller is refused anyway, so
        # one shared attempt per cold_request_interval finds a recovered STS within seconds.
        error, last = role.last_error, role.attempted_at
        return (
            not holding
            and error is not None
            and error.retryable
            and last is not None
            and now - last >= self._policy.cold_request_interval
        )

    def waiting(self, name: str) -> bool:
        """Whether the role waits for input (an MFA code) before its source is called again."""
        return self._roles[name].waiting

    def resume(self, names: Iterable[str]) -> None:
        """What these roles waited for came some other way (a sibling opened their shared MFA
        session): fetch now, for them and the roles chained off them. Call on the loop."""
        names = set(names)
        for role in self._roles.values():
            if role.waiting and (role.name in names or role.source.upstream in names):
                role.waiting, role.retry_at = False, None
                self._flight(role)

    async def wake(self, name: str) -> Credentials:
        """New input for this role's source has arrived: fetch now, whatever the backoff, and
        return the credentials (raises SourceError if the source still fails)."""
        role = self._roles[name]
        if role.flight is not None and not role.flight.done():
            await asyncio.wait([role.flight])  # it started without the new input
        role.waiting, role.retry_at = False, None
        return (await self._flight(role)).credentials

    def _flight(self, role: RoleState) -> asyncio.Task[Served]:
        """The one fetch in progress for this role, started if there is none (single-flight)."""
        if role.flight is None or role.flight.done():
            role.flight = asyncio.create_task(self._fetch(role), name=f"refresh {role.name}")
            # Nobody may await a background refresh; mark its failure as seen (it is logged).
            role.flight.add_done_callback(lambda t: t.cancelled() or t.exception())
        return role.flight

    async def _upstream(self, role: RoleState) -> Credentials | None:
        """The credentials of the role this one chains off, from this engine (cache or fetch)."""
        name = role.source.upstream
        if name is None:
            return None
        try:
            return await self.get(name, patient=True)
        except CredentialsUnavailable as e:
            err = SourceError(f"source role {name} has no credentials: {e.cause or e}")
            err.needs_input = e.cause is not None and e.cause.needs_input
            raise err from None

    async def _fetch(self, role: RoleState) -> Served:
        role.fetches += 1
        role.attempted_at = self._clock()
        try:
            upstream = await self._upstream(role)
            started = self._monotonic()
            try:
                creds = await (role.source.fetch(upstream) if upstream is not None else role.source.fetch())
            except Exception as e:
                code = e.code if isinstance(e, SourceError) else "error"
                self._observer.fetched(role.name, code, self._monotonic() - started)
                raise
            self._observer.fetched(role.name, SUCCESS, self._monotonic() - started)
        except SourceError as e:
            self._failed(role, e)
            raise
        except Exception as e:  # a bug in a source must not kill the engine, nor hide
            if role.last_bug is not type(e):
                # Sources keep secrets out of their exceptions' text (credentials' repr hides them).
                log.error("bug while getting credentials for role %s", role.name, exc_info=e)
                role.last_bug = type(e)
            err = SourceError(f"unexpected {type(e).__name__} while getting credentials: {e} (see the log)")
            self._failed(role, err)
            raise err from e
        role.failures, role.last_error, role.retry_at, role.waiting = 0, None, None, False
        role.last_bug = None
        served = Served.of(creds)
        self._cache[role.key] = served
        # Until the refresh is due (which is before the serve floor) and the cache would drop it.
        until = min(refresh_at(creds, self._policy), creds.expiration - self._policy.expiry_margin)
        for current in self._roles.values():
            if current.key == role.key:  # roles with equal keys share the cache entry
                current.hot = (served, until)
        log.debug(
            "credentials cached role=%s key=%s expires=%s",
            role.name,
            creds.key_suffix,
            wire_time(creds.expiration),
        )
        return served

    def _failed(self, role: RoleState, error: SourceError) -> None:
        record_failure(role, error, self._held(role), self._policy, self._clock(), self._rng)

    def status(self, name: str) -> RoleStatus:
        role = self._roles[name]
        creds = self._held(role)
        return RoleStatus(
            name=name,
            role_arn=role.source.role_arn,
            source_description=role.source.description,
            expiration=creds.expiration if creds else None,
            failures=role.failures,
            last_error=str(role.last_error) if role.last_error else None,
            retry_at=role.retry_at,
            fetches=role.fetches,
            waiting=role.waiting,
            key_suffix=creds.key_suffix if creds else None,
        )


def _states(sources: Mapping[str, Source], current: Mapping[str, RoleState]) -> dict[str, RoleState]:
    """A state per role: the current one where the source's cache_key is unchanged."""
    states = {}
    for name, source in sources.items():
        if source.upstream is not None and source.upstream not in sources:
            raise ValueError(f"role {name} chains off {source.upstream}, which has no source")
        old = current.get(name)
        states[name] = old if old is not None and old.key == source.cache_key else RoleState(name, source)
    return states
