"""The role sessions the agent holds: one per pod (or per ServiceAccount) with a binding, as
RoleSpecs with EKS Pod Identity's session tags, kept in the one credential engine."""

from __future__ import annotations

import asyncio
import hashlib
import logging
import re

from imds_proxy.aws.sts.clients import ClientFactory, STSClient
from imds_proxy.aws.sts.source import AssumeRoleSource
from imds_proxy.config.roles import DEFAULT_DURATION, RoleSpec
from imds_proxy.engine.credentials import Clock, Served
from imds_proxy.engine.refresh import CredentialEngine
from imds_proxy.kubernetes.pods import Pod
from imds_proxy.kubernetes.policy import Binding, Policy

log = logging.getLogger("imds_proxy.kubernetes.sessions")

_NOT_IN_SESSION_NAME = re.compile(r"[^\w+=,.@-]", re.ASCII)
_MAX_SESSION_NAME = 64
_MAX_TAG_VALUE = 256


def session_name(*parts: str) -> str:
    """`k8s-PART-PART` in STS's RoleSessionName alphabet; when longer than 64 characters, cut
    and ended with a hash of the whole so two long names never collide."""
    name = _NOT_IN_SESSION_NAME.sub("-", "-".join(("k8s", *parts)))
    if len(name) <= _MAX_SESSION_NAME:
        return name
    digest = hashlib.sha256(name.encode()).hexdigest()[:8]
    return f"{name[: _MAX_SESSION_NAME - 9]}-{digest}"


def session_tags(policy: Policy, binding: Binding, pod: Pod | None) -> tuple[tuple[str, str], ...]:
    """The tags EKS Pod Identity sets (kubernetes-namespace, -service-account, -pod-name,
    -pod-uid, and the cluster), then the binding's own; sorted by key."""
    tags = dict(binding.tags)
    tags["kubernetes-namespace"] = binding.namespace
    tags["kubernetes-service-account"] = binding.service_account
    if policy.cluster_name:
        tags["kubernetes-cluster-name"] = policy.cluster_name
    if pod is not None:
        tags["kubernetes-pod-name"] = pod.name
        tags["kubernetes-pod-uid"] = pod.uid
    return tuple(sorted((k, v[:_MAX_TAG_VALUE]) for k, v in tags.items()))


def shared_client(factory: ClientFactory) -> ClientFactory:
    """One botocore STS client for every session (clients are thread-safe; making one per pod
    would cost tens of milliseconds and megabytes each)."""
    made: dict[tuple[str | None, str | None], STSClient] = {}

    def client(spec: RoleSpec) -> STSClient:
        key = (spec.region, spec.sts_endpoint_url)
        if key not in made:
            made[key] = factory(spec)
        return made[key]

    return client


class Sessions:
    """Which engine role serves which pod, kept in step with the pods on the node and the policy:
    a pod with a binding gets its session fetched when it appears (prefetch) and dropped when it
    goes; a policy change rebuilds the set (unchanged specs keep their credentials)."""

    def __init__(
        self,
        clock: Clock,
        client_factory: ClientFactory,
        *,
        region: str | None = None,
        sts_endpoint_url: str | None = None,
        engine: CredentialEngine,
    ) -> None:
        self._clock = clock
        self._factory = shared_client(client_factory)
        self._region = region
        self._endpoint = sts_endpoint_url
        self.engine = engine
        self.policy: Policy | None = None
        self._pods: dict[str, Pod] = {}
        self._prefetches: set[asyncio.Task[None]] = set()

    def name_for(self, pod: Pod) -> str | None:
        """The engine role that serves `pod`, None when its ServiceAccount has no binding."""
        if self.policy is None or self.policy.binding(pod.namespace, pod.service_account) is None:
            return None
        if self.policy.sessions == "per-service-account":
            return f"sa:{pod.namespace}/{pod.service_account}"
        return f"pod:{pod.namespace}/{pod.name}/{pod.uid}"

    def spec_for(self, pod: Pod) -> RoleSpec | None:
        policy = self.policy
        binding = policy.binding(pod.namespace, pod.service_account) if policy else None
        if policy is None or binding is None:
            return None
        per_pod = policy.sessions == "per-pod"
        name = session_name(pod.namespace, pod.name if per_pod else pod.service_account)
        return RoleSpec(
            role_arn=binding.role_arn,
            session_name=name,
            duration=binding.duration or DEFAULT_DURATION,
            external_id=binding.external_id,
            region=self._region,
            sts_endpoint_url=self._endpoint,
            tags=session_tags(policy, binding, pod if per_pod else None),
        )

    def _rebuild(self) -> set[str]:
        """Hand the engine the sources of every pod with a binding; the names that are new."""
        before = set(self.engine.role_names)
        sources: dict[str, AssumeRoleSource] = {}
        for pod in self._pods.values():
            name, spec = self.name_for(pod), self.spec_for(pod)
            if name is not None and spec is not None and name not in sources:
                sources[name] = AssumeRoleSource(spec, self._clock, self._factory)
        self.engine.update(sources)
        return set(sources) - before

    def _prefetch(self, names: set[str]) -> None:
        for name in names:
            task = asyncio.get_running_loop().create_task(self._fetch(name), name=f"prefetch {name}")
            self._prefetches.add(task)
            task.add_done_callback(self._prefetches.discard)

    async def _fetch(self, name: str) -> None:
        if name in self.engine:
            try:
                await self.engine.served(name)
            except Exception as e:  # the engine has logged it; the pod's request retries
                log.info("prefetch of %s brought no credentials yet: %s", name, e)

    def set_policy(self, policy: Policy) -> None:
        self.policy = policy
        self._prefetch(self._rebuild())

    def pod_changed(self, old: Pod | None, new: Pod | None) -> None:
        """PodSet's callback: a pod added, changed or gone."""
        if old is not None:
            self._pods.pop(old.uid, None)
        if new is not None:
            self._pods[new.uid] = new
        self._prefetch(self._rebuild())

    async def served(self, pod: Pod) -> Served | None:
        """The pod's credentials (CredentialsUnavailable when STS gives none); None without a
        binding."""
        name = self.name_for(pod)
        if name is None:
            return None
        if name not in self.engine:  # a pod the watch has not shown us yet
            self._pods[pod.uid] = pod
            self._rebuild()
        return await self.engine.served(name)

    async def settled(self) -> None:
        """Wait for the prefetches in progress (tests, shutdown)."""
        await asyncio.gather(*self._prefetches, return_exceptions=True)

    async def close(self) -> None:
        for task in list(self._prefetches):
            task.cancel()
        await asyncio.gather(*self._prefetches, return_exceptions=True)
