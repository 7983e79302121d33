"""The node agent on the wire: a "pod" network namespace reaches the agent on 169.254.170.23 and
[fd00:ec2::23] in a "node" namespace, with real boto3 and a projected-token file; STS is moto."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from imds_proxy.config.listeners import Listener
from imds_proxy.config.roles import RoleSpec
from imds_proxy.engine.credentials import utc_now

from agent_netns import AGENT_IP, POD_IP, POD_IP6, Namespaces, node_and_pod, require_netns
from agent_support import NODE, running_agent
from conftest import caller_arn
from fakes import ISSUED, FakeClock
from kube_fake import FakeCluster

POD_IP_B = "10.213.0.3"
PROBE = Path(__file__).with_name("pod_probe.py")
URL4 = f"http://{AGENT_IP}/v1/credentials"
URL6 = "http://[fd00:ec2::23]/v1/credentials"


def in_pod(ns: Namespaces, cases: list[dict[str, str]]) -> list[dict[str, Any]]:
    """Run the probe in the pod namespace (bounded: 60 s) and read one result per case."""
    done = subprocess.run(
        ["ip", "netns", "exec", ns.pod, sys.executable, str(PROBE), json.dumps(cases)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    results = [json.loads(line) for line in done.stdout.splitlines()]
    for r in results:
        ISSUED.update(str(r[k]) for k in ("secret", "token") if r.get(k))
    return results


def add_second_pod_address(ns: Namespaces) -> None:
    """A second pod's address in the pod namespace, routed back from the node."""
    pod_end = next(
        line.split(":")[1].strip().split("@")[0]
        for line in subprocess.run(
            ["ip", "-n", ns.pod, "-o", "link", "show", "type", "veth"],
            capture_output=True,
            text=True,
            check=True,
        ).stdout.splitlines()
    )
    node_end = "ikn" + pod_end[3:]
    subprocess.run(
        ["ip", "-n", ns.pod, "addr", "add", f"{POD_IP_B}/32", "dev", pod_end], check=True, timeout=10
    )
    subprocess.run(
        ["ip", "-n", ns.node, "route", "add", f"{POD_IP_B}/32", "dev", node_end], check=True, timeout=10
    )
    # The SDK's requests leave from the first pod's address.
    subprocess.run(
        ["ip", "-n", ns.pod, "route", "replace", f"{AGENT_IP}/32", "dev", pod_end, "src", POD_IP],
        check=True,
        timeout=10,
    )


@pytest.mark.sdk
async def test_a_pod_namespace_gets_its_role_and_every_refusal_has_its_status(
    tmp_path: Path, local_aws: Any
) -> None:
    require_netns()
    clock = FakeClock(utc_now())  # moto's credentials expire by the real clock
    cluster = FakeCluster(clock)
    web = await cluster.add_pod("shop", "web-1", NODE, POD_IP, sa="web")
    cluster.pods[web["metadata"]["uid"]]["status"]["podIPs"].append({"ip": POD_IP6})
    other_app = await cluster.add_pod("other", "app-1", NODE, POD_IP_B, sa="app")
    elsewhere = await cluster.add_pod("shop", "web-2", "node-b", "10.99.0.2", sa="web")
    gone = await cluster.add_pod("shop", "web-0", NODE, "10.213.0.9", sa="web")
    tokens = {
        "good": cluster.token(web),
        "other-node": cluster.token(elsewhere),
        "other-audience": cluster.token(web, audience="sts.amazonaws.com"),
        "expired": cluster.token(web, lifetime=-10),
        "deleted": cluster.token(gone),
        "no-binding": cluster.token(other_app),
    }
    await cluster.delete_pod(gone)
    files = {}
    for name, token in tokens.items():
        files[name] = tmp_path / f"token-{name}"
        files[name].write_text(token)  # kubelet writes it so: no newline
    policy = {
        "clusterName": "wire",
        "bindings": [{"namespace": "shop", "serviceAccount": "web", "roleArn": local_aws.role_arn}],
    }

    def moto_sts(_spec: RoleSpec) -> Any:
        return local_aws.client("sts")

    cluster.lists_open.clear()
    listeners = (Listener(AGENT_IP, 80), Listener("fd00:ec2::23", 80))
    with node_and_pod() as ns:
        add_second_pod_address(ns)
        async with running_agent(
            tmp_path,
            clock,
            moto_sts,
            cluster,
            policy=policy,
            listeners=listeners,
            bind=ns.bind_in_node(),
            wait_synced=False,
        ) as run:
            (before,) = await asyncio.to_thread(
                in_pod, ns, [{"sdk": "http", "url": URL4, "token_file": str(files["good"])}]
            )
            assert before["status"] == 503, before
            cluster.lists_open.set()
            await asyncio.wait_for(run.agent.pods.synced.wait(), 10)
            cases = [
                {"sdk": "boto3", "url": URL4, "token_file": str(files["good"])},
                {"sdk": "boto3", "url": URL6, "token_file": str(files["good"])},
                *(
                    {"sdk": "http", "url": URL4, "token_file": str(files[n])}
                    for n in ("other-node", "other-audience", "expired", "deleted")
                ),
                {"sdk": "http", "url": URL4, "token_file": str(files["no-binding"]), "source": POD_IP_B},
            ]
            results = await asyncio.to_thread(in_pod, ns, cases)
    v4, v6, other_node, other_audience, expired, deleted, no_binding = results
    for sdk in (v4, v6):
        assert sdk.get("method") == "container-role", sdk
        doc = {"AccessKeyId": sdk["key"], "SecretAccessKey": sdk["secret"], "Token": sdk["token"]}
        arn = caller_arn(doc, local_aws)
        assert arn.endswith("assumed-role/imds-proxy-sandbox/k8s-shop-web-1"), arn
    assert [r["status"] for r in (other_node, other_audience, expired, deleted)] == [403, 403, 403, 403], (
        results
    )
    assert "another node" in other_node["message"]
    assert (no_binding["status"], no_binding["message"]) == (403, "no role for other/app")
    print(
        "\n".join(
            json.dumps({k: v for k, v in r.items() if k not in ("secret", "token")})
            for r in [before, *results]
        )
    )
