"""The pods on this node, as the API server lists and watches them (`spec.nodeName=` this node):
frozen Pod values by UID and by address, and the list-then-watch loop that keeps them."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any, Protocol

log = logging.getLogger("imds_proxy.kubernetes.pods")

#: After a failed list or a broken watch, wait this long before listing again (doubling to the
#: cap): a restarting API server must not be hammered by every node at once.
RETRY_BASE, RETRY_CAP = 1.0, 30.0
#: The API server ends a watch after this long; we then resume from the last resourceVersion.
WATCH_TIMEOUT = 300


class WatchExpired(Exception):
    """The resourceVersion we resume from is gone (410): list again."""


@dataclass(frozen=True)
class Pod:
    namespace: str
    name: str
    uid: str
    service_account: str
    node_name: str
    ips: frozenset[str]

    @property
    def ref(self) -> str:
        return f"{self.namespace}/{self.name}"

    @classmethod
    def of(cls, raw: Mapping[str, Any]) -> Pod | None:
        """The pod in an API object; None for one that cannot be served (no UID yet)."""
        meta, spec, status = raw.get("metadata") or {}, raw.get("spec") or {}, raw.get("status") or {}
        if not meta.get("uid") or not meta.get("name"):
            return None
        ips = {p.get("ip") for p in status.get("podIPs") or [] if p.get("ip")}
        if status.get("podIP"):
            ips.add(status["podIP"])
        return cls(
            namespace=meta.get("namespace", "default"),
            name=meta["name"],
            uid=meta["uid"],
            service_account=spec.get("serviceAccountName") or "default",
            node_name=spec.get("nodeName") or "",
            ips=frozenset(ips),
        )


class PodApi(Protocol):
    """What the watch needs of the API server (api.KubeApi; the tests' fake answers over HTTP)."""

    async def list_pods(self, node: str) -> tuple[list[dict[str, Any]], str]: ...

    def watch_pods(
        self, node: str, resource_version: str, server_timeout: int
    ) -> AsyncIterator[tuple[str, dict[str, Any]]]: ...


class PodSet:
    """This node's pods, replaced whole by a list and changed one by one by watch events.
    `synced` is set after the first complete list: until then no pod is known, and the agent
    answers 503 rather than guess (kube2iam #170's boot race gave out the node's role)."""

    def __init__(self, node: str) -> None:
        self.node = node
        self.synced = asyncio.Event()
        self._by_uid: dict[str, Pod] = {}
        self._by_ip: dict[str, Pod] = {}
        #: Called with (old, new) for every pod added (old None), changed, or gone (new None).
        self.on_change: list[Callable[[Pod | None, Pod | None], None]] = []

    def by_uid(self, uid: str) -> Pod | None:
        return self._by_uid.get(uid)

    def by_ip(self, ip: str) -> Pod | None:
        return self._by_ip.get(ip)

    def __len__(self) -> int:
        return len(self._by_uid)

    def __iter__(self) -> Any:
        return iter(list(self._by_uid.values()))

    def _reindex(self) -> None:
        # Host-network pods share the node's address: such an address names no one pod.
        counts: dict[str, int] = {}
        for pod in self._by_uid.values():
            for ip in pod.ips:
                counts[ip] = counts.get(ip, 0) + 1
        self._by_ip = {ip: pod for pod in self._by_uid.values() for ip in pod.ips if counts[ip] == 1}

    def _notify(self, old: Pod | None, new: Pod | None) -> None:
        for callback in self.on_change:
            callback(old, new)

    def replace(self, pods: list[Pod]) -> None:
        """A complete list: pods not in it are gone."""
        new = {p.uid: p for p in pods if p.node_name == self.node}
        old, self._by_uid = self._by_uid, new
        self._reindex()
        for uid, pod in old.items():
            if uid not in new:
                self._notify(pod, None)
        for uid, pod in new.items():
            if old.get(uid) != pod:
                self._notify(old.get(uid), pod)
        self.synced.set()

    def apply(self, kind: str, pod: Pod) -> None:
        """One watch event (ADDED, MODIFIED, DELETED)."""
        old = self._by_uid.get(pod.uid)
        if kind == "DELETED" or pod.node_name != self.node:
            if old is None:
                return
            del self._by_uid[pod.uid]
            self._reindex()
            self._notify(old, None)
            return
        if old == pod:
            return
        self._by_uid[pod.uid] = pod
        self._reindex()
        self._notify(old, pod)


async def keep_synced(
    api: PodApi, pods: PodSet, sleep: Callable[[float], Awaitable[None]] = asyncio.sleep
) -> None:
    """List this node's pods, then watch from the list's resourceVersion; on a 410 or a broken
    stream list again (after a backoff when the list itself fails). Runs until cancelled."""
    failures = 0
    while True:
        try:
            raw, version = await api.list_pods(pods.node)
            pods.replace([p for p in map(Pod.of, raw) if p is not None])
            log.info("pods on node %s: %d (resourceVersion %s)", pods.node, len(pods), version)
            failures = 0
            while True:
                async for kind, obj in api.watch_pods(pods.node, version, WATCH_TIMEOUT):
                    if kind == "BOOKMARK":
                        version = str((obj.get("metadata") or {}).get("resourceVersion") or version)
                        continue
                    pod = Pod.of(obj)
                    if pod is None:
                        continue
                    version = str((obj.get("metadata") or {}).get("resourceVersion") or version)
                    pods.apply(kind, pod)
        except asyncio.CancelledError:
            raise
        except WatchExpired:
            log.info("pod watch: resourceVersion expired; listing again")
            continue
        except Exception as e:  # the API server away, a proxy in between: keep what we know, retry
            failures += 1
            delay = min(RETRY_CAP, RETRY_BASE * 2 ** (failures - 1))
            log.warning("pod list/watch failed (%s: %s); again in %.0fs", type(e).__name__, e, delay)
            await sleep(delay)
