"""The node agent on loopback: the real agent and kubernetes_asyncio client against the fake API
server; STS is FakeSts at the boto3 boundary (tags and session names as sent)."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import yaml

from imds_proxy.config.roles import RoleSpec
from imds_proxy.kubernetes.settings import RateLimit

from agent_support import NODE, POLICY, ROLE_WEB, Running, running_agent
from fakes import FakeClock, FakeSts, remember
from kube_fake import FakeCluster


@pytest.fixture
def sts(clock: FakeClock) -> FakeSts:
    return FakeSts(clock)


@pytest.fixture
def cluster(clock: FakeClock) -> FakeCluster:
    return FakeCluster(clock)


def factory(sts: FakeSts) -> Any:
    def make(_spec: RoleSpec) -> FakeSts:
        return sts

    return make


async def ask(run: Running, token: str | None, host: str | None = None) -> tuple[int, dict[str, Any]]:
    headers = {"Authorization": token} if token else {}
    if host:
        headers["Host"] = host
    async with aiohttp.ClientSession() as http, http.get(run.url, headers=headers) as r:
        doc = await r.json(content_type=None)
        return r.status, remember(doc)


async def first_answer(
    tmp_path: Path,
    clock: FakeClock,
    sts: FakeSts,
    cluster: FakeCluster,
    pod: tuple[str, str, str, str],
    *,
    sa: str = "web",
    host: str | None = None,
    **token: Any,
) -> tuple[dict[str, Any], int, dict[str, Any]]:
    """Add one pod (namespace, name, node, IP), start the agent, ask once with that pod's token
    (`token`: cluster.token's options): the pod, the status and the document."""
    added = await cluster.add_pod(*pod, sa=sa)
    async with running_agent(tmp_path, clock, factory(sts), cluster) as run:
        status, doc = await ask(run, cluster.token(added, **token), host)
    return added, status, doc


async def web_1(cluster: FakeCluster, **token: Any) -> tuple[dict[str, Any], str]:
    """The bound pod shop/web-1 on this node (10.1.0.5) and a token for it (cluster.token's options)."""
    pod = await cluster.add_pod("shop", "web-1", NODE, "10.1.0.5", sa="web")
    return pod, cluster.token(pod, **token)


async def test_bound_pod_gets_its_role_with_eks_session_tags(
    tmp_path: Path, clock: FakeClock, sts: FakeSts, cluster: FakeCluster
) -> None:
    pod, status, doc = await first_answer(tmp_path, clock, sts, cluster, ("shop", "web-1", NODE, "10.1.0.5"))
    assert status == 200, doc
    assert doc["RoleArn"] == ROLE_WEB and doc["AccessKeyId"] and doc["Token"]
    call = sts.calls("AssumeRole")[-1]
    assert call["RoleSessionName"] == "k8s-shop-web-1"
    assert call["DurationSeconds"] == 1800
    assert {t["Key"]: t["Value"] for t in call["Tags"]} == {
        "kubernetes-cluster-name": "test-cluster",
        "kubernetes-namespace": "shop",
        "kubernetes-pod-name": "web-1",
        "kubernetes-pod-uid": pod["metadata"]["uid"],
        "kubernetes-service-account": "web",
        "team": "shop",
    }


async def test_token_for_another_node_is_refused(
    tmp_path: Path, clock: FakeClock, sts: FakeSts, cluster: FakeCluster
) -> None:
    _, status, doc = await first_answer(
        tmp_path, clock, sts, cluster, ("shop", "web-2", "node-b", "10.2.0.5")
    )
    assert (status, doc["Code"]) == (403, "AccessDenied")
    assert "another node" in doc["Message"]
    assert not sts.calls("AssumeRole")


async def test_without_node_in_extra_the_pod_lookup_decides(
    tmp_path: Path, clock: FakeClock, sts: FakeSts
) -> None:
    cluster = FakeCluster(clock, node_in_extra=False)
    mine = await cluster.add_pod("shop", "web-1", NODE, "10.1.0.5", sa="web")
    other = await cluster.add_pod("shop", "web-2", "node-b", "10.2.0.5", sa="web")
    async with running_agent(tmp_path, clock, factory(sts), cluster) as run:
        assert (await ask(run, cluster.token(mine)))[0] == 200
        status, doc = await ask(run, cluster.token(other))
    assert status == 403 and "another node" in doc["Message"]


async def test_token_for_another_audience_is_refused(
    tmp_path: Path, clock: FakeClock, sts: FakeSts, cluster: FakeCluster
) -> None:
    _, status, doc = await first_answer(
        tmp_path,
        clock,
        sts,
        cluster,
        ("shop", "web-1", NODE, "10.1.0.5"),
        audience="https://kubernetes.default.svc.cluster.local",
    )
    assert status == 403 and "not valid" in doc["Message"]
    assert cluster.reviews[-1]["audiences"] == ["imds-proxy"]


async def test_expired_token_is_refused_even_after_a_cached_review(
    tmp_path: Path, clock: FakeClock, sts: FakeSts, cluster: FakeCluster
) -> None:
    _, token = await web_1(cluster, lifetime=600)
    async with running_agent(tmp_path, clock, factory(sts), cluster) as run:
        assert (await ask(run, token))[0] == 200
        clock.advance(seconds=601)
        status, doc = await ask(run, token)
    assert status == 403 and "not valid" in doc["Message"]
    assert len(cluster.reviews) == 2  # the cached review ended with the token


async def test_reviews_are_cached_by_token(
    tmp_path: Path, clock: FakeClock, sts: FakeSts, cluster: FakeCluster
) -> None:
    _, token = await web_1(cluster)
    async with running_agent(tmp_path, clock, factory(sts), cluster) as run:
        for _ in range(3):
            assert (await ask(run, token))[0] == 200
    assert len(cluster.reviews) == 1


async def test_deleted_pods_token_is_refused(
    tmp_path: Path, clock: FakeClock, sts: FakeSts, cluster: FakeCluster
) -> None:
    pod, token = await web_1(cluster)
    async with running_agent(tmp_path, clock, factory(sts), cluster) as run:
        assert (await ask(run, token))[0] == 200  # its review is now cached
        await cluster.delete_pod(pod)
        assert (await run.next_change())[1] is None
        status, doc = await ask(run, token)
        assert status == 403 and "not running on node" in doc["Message"]
        assert run.agent.sessions.engine.role_names == ()  # its session dropped


async def test_namespace_without_binding_is_refused(
    tmp_path: Path, clock: FakeClock, sts: FakeSts, cluster: FakeCluster
) -> None:
    _, status, doc = await first_answer(
        tmp_path, clock, sts, cluster, ("other", "app-1", NODE, "10.1.0.6"), sa="app"
    )
    assert (status, doc["Message"]) == (403, "no role for other/app")


async def test_before_the_pod_list_syncs_the_answer_is_503(
    tmp_path: Path, clock: FakeClock, sts: FakeSts, cluster: FakeCluster
) -> None:
    pod = await cluster.add_pod("shop", "web-1", NODE, "10.1.0.5", sa="web")
    cluster.lists_open.clear()
    async with running_agent(tmp_path, clock, factory(sts), cluster, wait_synced=False) as run:
        status, doc = await ask(run, cluster.token(pod))
        assert (status, doc["Code"]) == (503, "ServiceUnavailable")
        assert not cluster.reviews  # nothing reviewed, nothing guessed
        cluster.lists_open.set()
        await asyncio.wait_for(run.agent.pods.synced.wait(), 5)
        assert (await ask(run, cluster.token(pod)))[0] == 200


async def test_a_session_is_prefetched_when_its_pod_appears(
    tmp_path: Path, clock: FakeClock, sts: FakeSts, cluster: FakeCluster
) -> None:
    async with running_agent(tmp_path, clock, factory(sts), cluster) as run:
        await cluster.add_pod("shop", "web-9", NODE, "10.1.0.9", sa="web")
        await run.next_change()
        await asyncio.wait_for(run.agent.sessions.settled(), 5)
        assert [c["RoleSessionName"] for c in sts.calls("AssumeRole")] == ["k8s-shop-web-9"]


async def test_per_service_account_sessions_share_one_role_session(
    tmp_path: Path, clock: FakeClock, sts: FakeSts, cluster: FakeCluster
) -> None:
    a = await cluster.add_pod("shop", "web-1", NODE, "10.1.0.5", sa="web")
    b = await cluster.add_pod("shop", "web-2", NODE, "10.1.0.6", sa="web")
    policy = {**POLICY, "sessions": "per-service-account"}
    async with running_agent(tmp_path, clock, factory(sts), cluster, policy=policy) as run:
        first, second = await ask(run, cluster.token(a)), await ask(run, cluster.token(b))
    assert first[1]["AccessKeyId"] == second[1]["AccessKeyId"]
    (call,) = sts.calls("AssumeRole")
    assert call["RoleSessionName"] == "k8s-shop-web"
    assert "kubernetes-pod-name" not in {t["Key"] for t in call["Tags"]}


async def test_policy_reload_binds_and_a_broken_policy_keeps_the_last(
    tmp_path: Path, clock: FakeClock, sts: FakeSts, cluster: FakeCluster
) -> None:
    pod = await cluster.add_pod("other", "app-1", NODE, "10.1.0.6", sa="app")
    async with running_agent(tmp_path, clock, factory(sts), cluster) as run:
        assert (await ask(run, cluster.token(pod)))[0] == 403
        arn = "arn:aws:iam::123456789012:role/other-app"
        bindings = [*POLICY["bindings"], {"namespace": "other", "serviceAccount": "app", "roleArn": arn}]
        run.policy_file.write_text(yaml.safe_dump({"bindings": bindings}))
        assert run.agent.reload_policy()
        status, doc = await ask(run, cluster.token(pod))
        assert (status, doc["RoleArn"]) == (200, arn)
        run.policy_file.write_text("bindings: [{namespace: other}]")
        assert not run.agent.reload_policy()
        assert (await ask(run, cluster.token(pod)))[0] == 200


async def test_a_host_that_is_not_ours_is_refused(
    tmp_path: Path, clock: FakeClock, sts: FakeSts, cluster: FakeCluster
) -> None:
    _, status, _ = await first_answer(
        tmp_path, clock, sts, cluster, ("shop", "web-1", NODE, "10.1.0.5"), host="metadata.evil.example"
    )
    assert status == 403 and not cluster.reviews


async def test_a_peer_over_its_rate_gets_429(
    tmp_path: Path, clock: FakeClock, sts: FakeSts, cluster: FakeCluster
) -> None:
    pod = await cluster.add_pod("shop", "web-1", NODE, "10.1.0.5", sa="web")
    rate = RateLimit(per_second=0.001, burst=2)
    async with running_agent(tmp_path, clock, factory(sts), cluster, rate=rate) as run:
        statuses = [(await ask(run, cluster.token(pod)))[0] for _ in range(3)]
    assert statuses == [200, 200, 429]


async def test_no_token_gets_401(
    tmp_path: Path, clock: FakeClock, sts: FakeSts, cluster: FakeCluster
) -> None:
    async with running_agent(tmp_path, clock, factory(sts), cluster) as run:
        assert (await ask(run, None))[0] == 401
