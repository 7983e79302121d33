"""The node agent on the wire: a "pod" network namespace reaches the agent on 169.254.170.23 and
[fd00:ec2::23] in a "node" namespace with real SDKs (boto3, the JS SDK v3, the Go SDK v2) and a
projected-token file; STS is moto."""

from __future__ import annotations

import asyncio
import contextlib
import json
import subprocess
import sys
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from imds_proxy.config.listeners import Listener
from imds_proxy.config.roles import RoleSpec
from imds_proxy.engine.credentials import Credentials, utc_now

from agent_netns import (
    AGENT_IP,
    POD_IP,
    POD_IP6,
    Namespaces,
    add_second_pod_address,
    node_and_pod,
    require_netns,
)
from agent_support import NODE, Running, running_agent
from conftest import caller_arn
from container_support import JS_DIR, require_node
from fakes import ISSUED, FakeClock
from kube_fake import FakeCluster
from procs import isolated_env
from sdk_support import GO_SDK, go_resolve_fixture  # noqa: F401  (registers the fixture)

pytestmark = pytest.mark.sdk

POD_IP_B = "10.213.0.3"
PROBE = Path(__file__).with_name("pod_probe.py")
URL4 = f"http://{AGENT_IP}/v1/credentials"
URL6 = "http://[fd00:ec2::23]/v1/credentials"
#: Who moto's STS says the bound pod's credentials belong to.
WEB_1_SESSION = "assumed-role/imds-proxy-sandbox/k8s-shop-web-1"


@dataclass
class Wire:
    ns: Namespaces
    run: Running
    cluster: FakeCluster
    #: A projected-token file per case: good, other-node, other-audience, expired, deleted, no-binding.
    files: dict[str, Path]
    web_uid: str

    def served(self) -> Credentials:
        """The credentials the agent holds for the bound pod shop/web-1 (its secrets registered
        for the log check)."""
        agent = self.run.agent
        pod = agent.pods.by_uid(self.web_uid)
        name = agent.sessions.name_for(pod) if pod else None
        creds = agent.sessions.engine.cached(name) if name else None
        assert creds is not None, "the agent holds no session for shop/web-1"
        ISSUED.update((creds.secret_access_key, creds.session_token))
        return creds


@contextlib.asynccontextmanager
async def wired(tmp_path: Path, local_aws: Any, *, synced: bool = True) -> AsyncIterator[Wire]:
    """The bound pod shop/web-1 (10.213.0.2, fd00:213::2) and the unbound other/app-1
    (10.213.0.3) in the pod namespace; the agent in the node namespace, its pod list held back
    unless `synced`."""
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

    if not synced:
        cluster.lists_open.clear()
    listeners = (Listener(AGENT_IP, 80), Listener("fd00:ec2::23", 80))
    with node_and_pod() as ns:
        add_second_pod_address(ns, POD_IP_B)
        async with running_agent(
            tmp_path,
            clock,
            moto_sts,
            cluster,
            policy=policy,
            listeners=listeners,
            bind=ns.bind_in_node(),
            wait_synced=synced,
        ) as run:
            yield Wire(ns, run, cluster, files, web["metadata"]["uid"])


def in_pod(ns: Namespaces, cases: list[dict[str, str]]) -> list[dict[str, Any]]:
    """Run the Python probe in the pod namespace (bounded: 60 s) and read one result per case."""
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


async def sdk_in_pod(wire: Wire, argv: list[str], url: str, token: str) -> subprocess.CompletedProcess[str]:
    """An SDK's client run in the pod namespace as a workload with the snippet's environment
    (FULL_URI and the token file, nothing else of AWS's) would be (bounded: 60 s)."""
    home = wire.files[token].parent / "home"
    env = isolated_env(
        home,
        {
            "AWS_EC2_METADATA_DISABLED": "true",
            "AWS_CONTAINER_CREDENTIALS_FULL_URI": url,
            "AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE": str(wire.files[token]),
            "NO_PROXY": "169.254.170.23,fd00:ec2::23",
        },
    )
    return await asyncio.to_thread(
        subprocess.run,
        ["ip", "netns", "exec", wire.ns.pod, *argv],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def shown(name: str, done: subprocess.CompletedProcess[str]) -> str:
    """One line of what an SDK printed, for the test's output (it never prints secrets)."""
    return f"{name}: exit {done.returncode} {(done.stdout + done.stderr).strip()}"


async def test_boto3_in_a_pod_namespace_gets_its_role_and_every_refusal_has_its_status(
    tmp_path: Path, local_aws: Any
) -> None:
    async with wired(tmp_path, local_aws, synced=False) as wire:
        files = wire.files
        (before,) = await asyncio.to_thread(
            in_pod, wire.ns, [{"sdk": "http", "url": URL4, "token_file": str(files["good"])}]
        )
        assert before["status"] == 503, before
        wire.cluster.lists_open.set()
        await asyncio.wait_for(wire.run.agent.pods.synced.wait(), 10)
        cases = [
            {"sdk": "boto3", "url": URL4, "token_file": str(files["good"])},
            {"sdk": "boto3", "url": URL6, "token_file": str(files["good"])},
            *(
                {"sdk": "http", "url": URL4, "token_file": str(files[n])}
                for n in ("other-node", "other-audience", "expired", "deleted")
            ),
            {"sdk": "http", "url": URL4, "token_file": str(files["no-binding"]), "source": POD_IP_B},
        ]
        results = await asyncio.to_thread(in_pod, wire.ns, cases)
    v4, v6, other_node, other_audience, expired, deleted, no_binding = results
    for sdk in (v4, v6):
        assert sdk.get("method") == "container-role", sdk
        doc = {"AccessKeyId": sdk["key"], "SecretAccessKey": sdk["secret"], "Token": sdk["token"]}
        arn = caller_arn(doc, local_aws)
        assert arn.endswith(WEB_1_SESSION), arn
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


def gate_lines(caplog: pytest.LogCaptureFixture) -> list[str]:
    """What the agent's gate logged since the last caplog.clear(): one line per request."""
    return [r.getMessage() for r in caplog.records if r.name == "imds_proxy.kubernetes.gate"]


async def test_the_js_sdk_v3_gets_the_pods_role_and_reports_no_credentials_when_refused(
    tmp_path: Path, local_aws: Any, caplog: pytest.LogCaptureFixture
) -> None:
    node = require_node()
    chain = [node, str(JS_DIR / "container.mjs"), "chain"]  # the default provider chain
    from_http = [node, str(JS_DIR / "container.mjs"), "http"]  # its container provider alone
    runs: dict[str, tuple[subprocess.CompletedProcess[str], list[str]]] = {}
    async with wired(tmp_path, local_aws) as wire:
        for name, argv, url, token in (
            ("v4", chain, URL4, "good"),
            ("v6", chain, URL6, "good"),
            ("other-node", chain, URL4, "other-node"),
            ("expired", chain, URL6, "expired"),
            ("other-node/fromHttp", from_http, URL4, "other-node"),
        ):
            caplog.clear()
            runs[name] = (await sdk_in_pod(wire, argv, url, token), gate_lines(caplog))
        served = wire.served()
    print("\n".join(shown(name, done) for name, (done, _) in runs.items()))
    for name in ("v4", "v6"):
        done, _ = runs[name]
        assert done.returncode == 0, done.stderr
        assert json.loads(done.stdout)["accessKeyId"] == served.access_key_id
    doc = {
        "AccessKeyId": served.access_key_id,
        "SecretAccessKey": served.secret_access_key,
        "Token": served.session_token,
    }
    assert caller_arn(doc, local_aws).endswith(WEB_1_SESSION)
    # The chain reports no credentials; its message is its last provider's (fromContainerMetadata
    # takes only 127.0.0.1), so the agent's log shows why it refused (fromHttp retried 3 times).
    for name, why in (("other-node", "another node"), ("expired", "not valid")):
        done, lines = runs[name]
        assert (done.returncode, done.stdout) == (1, ""), done.stdout
        assert "CredentialsProviderError" in done.stderr, done.stderr
        assert lines and all("status=403" in line and why in line for line in lines), lines
    done, lines = runs["other-node/fromHttp"]
    assert done.returncode == 1 and "Server responded with status: 403" in done.stderr, done.stderr
    assert len(lines) == 1, lines


async def test_the_go_sdk_v2_here_refuses_the_agents_addresses_before_sending_anything(
    tmp_path: Path, local_aws: Any, go_resolve: str, caplog: pytest.LogCaptureFixture
) -> None:
    """Debian 12's Go SDK v2 predates EKS Pod Identity (release-2023-11-14): it takes plain http
    only for loopback hosts and has no AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE. When a newer one is
    installed this test fails: then it should assert the role, as the JS test does."""
    async with wired(tmp_path, local_aws) as wire:
        caplog.clear()
        v4 = await sdk_in_pod(wire, [go_resolve], URL4, "good")
        v6 = await sdk_in_pod(wire, [go_resolve], URL6, "good")
        asked_by_go = gate_lines(caplog)
        # The check above can see a request: the probe's one is logged.
        (control,) = await asyncio.to_thread(
            in_pod, wire.ns, [{"sdk": "http", "url": URL4, "token_file": str(wire.files["good"])}]
        )
        asked_after = gate_lines(caplog)
    version = next(
        line.split('"')[1]
        for line in (GO_SDK / "go_module_metadata.go").read_text().splitlines()
        if "goModuleVersion" in line and '"' in line
    )
    print(f"aws-sdk-go-v2/config {version}\n{shown('v4', v4)}\n{shown('v6', v6)}")
    for done, host in ((v4, AGENT_IP), (v6, "fd00:ec2::23")):
        assert done.returncode == 1, done.stdout
        assert f'invalid endpoint host, "{host}", only loopback hosts are allowed' in done.stderr
    assert not asked_by_go, asked_by_go
    assert control["status"] == 200 and len(asked_after) == 1, control
