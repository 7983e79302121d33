"""The daemon's Prometheus metrics: it watches the apps (requests, tokens, credentials served,
refusals) and the engine (STS calls, their time, failures), and reads expirations at scrape."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Iterator

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from imds_proxy.engine.observe import SUCCESS
from imds_proxy.engine.role_state import RoleStatus
from imds_proxy.server.observe import AuditOnly, CredentialsServed

_STATUS = {code: str(code) for code in range(100, 600)}
#: STS answers in tens of milliseconds; a slow endpoint or a retry shows up in seconds.
_STS_BUCKETS = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)


class _Expirations(Collector):
    """imds_proxy_credentials_expiration_timestamp_seconds, read from the engine at each scrape
    (so a reload's dropped role disappears with it)."""

    def __init__(self, statuses: Callable[[], Iterable[RoleStatus]]) -> None:
        self._statuses = statuses

    def collect(self) -> Iterator[Metric]:
        family = GaugeMetricFamily(
            "imds_proxy_credentials_expiration_timestamp_seconds",
            "When the credentials each role serves now expire (Unix time)",
            labels=["role"],
        )
        for status in self._statuses():
            if status.expiration is not None:
                family.add_metric([status.name], status.expiration.timestamp())
        yield family


class _Counts(Collector):
    """A counter of the request path, one per label set, counted on the event loop (the only
    thread that counts them) with a dict increment, not Counter.inc's lock and checks; read as
    a counter family, with each label set's creation time, at scrape."""

    def __init__(self, name: str, documentation: str, labels: tuple[str, ...]) -> None:
        self._name, self._documentation, self._labels = name, documentation, labels
        self.counts: dict[tuple[str, ...], int] = {}
        self._created: dict[tuple[str, ...], float] = {}

    def inc(self, key: tuple[str, ...]) -> None:
        counts = self.counts
        if key in counts:
            counts[key] += 1
        else:
            counts[key] = 1
            self._created[key] = time.time()

    def collect(self) -> Iterator[Metric]:
        family = CounterMetricFamily(self._name, self._documentation, labels=self._labels)
        for key, count in list(self.counts.items()):
            family.add_metric(key, count, created=self._created[key])
        yield family


class Metrics:
    """A registry of its own (not the process-global one), fed as a RequestObserver (the apps)
    and an EngineObserver (the engine). The audit line still goes out for each credential set."""

    def __init__(self, statuses: Callable[[], Iterable[RoleStatus]]) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        r = self.registry
        self._requests = _Counts("imds_proxy_requests", "Requests answered", ("listener", "route", "status"))
        self._tokens = Counter("imds_proxy_tokens_issued", "IMDSv2 session tokens issued", registry=r)
        self._served = _Counts("imds_proxy_credentials_served", "Credential sets served", ("role", "channel"))
        r.register(self._requests)
        r.register(self._served)
        self._sts = Counter("imds_proxy_sts_requests", "Calls to STS", ["role", "outcome"], registry=r)
        self._sts_seconds = Histogram(
            "imds_proxy_sts_request_seconds",
            "Time of calls to STS",
            ["role"],
            buckets=_STS_BUCKETS,
            registry=r,
        )
        self._failures = Counter(
            "imds_proxy_refresh_failures", "Calls to STS that brought no credentials", ["role"], registry=r
        )
        self._refused = Counter(
            "imds_proxy_clients_refused", "Requests refused to a client", ["reason"], registry=r
        )
        r.register(_Expirations(statuses))
        self._audit = AuditOnly()

    def request(self, listener: str, route: str, status: int, refused: str | None) -> None:
        self._requests.inc((listener, route, _STATUS.get(status) or str(status)))
        if route == "token" and status == 200:
            self._tokens.inc()
        if refused is not None:
            self._refused.labels(refused).inc()

    def served(self, event: CredentialsServed) -> None:
        self._served.inc((event.role, event.channel))
        self._audit.served(event)

    def fetched(self, role: str, outcome: str, seconds: float) -> None:
        self._sts.labels(role, outcome).inc()
        self._sts_seconds.labels(role).observe(seconds)
        if outcome != SUCCESS:
            self._failures.labels(role).inc()

    def render(self) -> tuple[bytes, str]:
        """The text exposition format, and its content type."""
        return generate_latest(self.registry), CONTENT_TYPE_LATEST
