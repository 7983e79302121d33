"""deploy/kubernetes/ rendered with `kubectl kustomize`, checked against the Kubernetes schemas
(kubernetes-validate, strict) and against the golden renderings in tests/golden/ (regenerate
with `kubectl kustomize deploy/kubernetes/base > tests/golden/kubernetes-base.yaml`, and the
same for workload, after reading the diff)."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import yaml

from sdk_support import skip_unless_ci

ROOT = Path(__file__).resolve().parent.parent
GOLDEN = Path(__file__).with_name("golden")
#: The oldest Kubernetes the manifests promise to work on (projected tokens with audiences, and
#: TokenReview's pod extra fields, are older still).
KUBERNETES_VERSION = "1.30.0"


def render(kustomization: str) -> list[dict[str, Any]]:
    kubectl = shutil.which("kubectl")
    if kubectl is None:
        skip_unless_ci("kubectl is not installed: apt-get install kubernetes-client")
    assert kubectl is not None
    done = subprocess.run(
        [kubectl, "kustomize", str(ROOT / "deploy/kubernetes" / kustomization)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    return [d for d in yaml.safe_load_all(done.stdout) if d]


def by_name(docs: list[dict[str, Any]]) -> dict[tuple[str, str], dict[str, Any]]:
    return {(d["kind"], d["metadata"]["name"]): d for d in docs}


@pytest.mark.parametrize("kustomization", ["base", "workload"])
def test_rendered_manifests_are_valid_kubernetes(kustomization: str) -> None:
    for doc in render(kustomization):
        kubernetes_validate.validate(doc, KUBERNETES_VERSION, strict=True)


@pytest.mark.parametrize("kustomization", ["base", "workload"])
def test_rendered_manifests_match_the_golden_files(kustomization: str) -> None:
    golden = list(yaml.safe_load_all((GOLDEN / f"kubernetes-{kustomization}.yaml").read_text()))
    assert by_name(render(kustomization)) == by_name([d for d in golden if d])


def test_the_daemonset_runs_as_the_issue_asks() -> None:
    docs = by_name(render("base"))
    spec = docs[("DaemonSet", "imds-proxy-node-agent")]["spec"]["template"]["spec"]
    assert spec["hostNetwork"] is True and spec["priorityClassName"] == "system-node-critical"
    assert {"operator": "Exists"} in spec["tolerations"]
    (init,) = spec["initContainers"]
    assert init["securityContext"]["capabilities"] == {"drop": ["ALL"], "add": ["NET_ADMIN"]}
    assert "address" in init["command"] and "169.254.170.23/32" in init["command"]
    (agent,) = spec["containers"]
    assert agent["securityContext"]["readOnlyRootFilesystem"] is True
    assert agent["securityContext"]["capabilities"] == {"drop": ["ALL"], "add": ["NET_BIND_SERVICE"]}
    assert agent["readinessProbe"]["httpGet"]["path"] == "/readyz"
    assert agent["livenessProbe"]["httpGet"]["path"] == "/healthz"
    rules = docs[("ClusterRole", "imds-proxy-node-agent")]["rules"]
    assert {
        "apiGroups": ["authentication.k8s.io"],
        "resources": ["tokenreviews"],
        "verbs": ["create"],
    } in rules
    assert all(r["verbs"] != ["*"] for r in rules)


def test_the_workload_snippet_mounts_a_token_for_imds_proxy() -> None:
    (deployment,) = render("workload")
    pod = deployment["spec"]["template"]["spec"]
    env = {e["name"]: e["value"] for e in pod["containers"][0]["env"]}
    assert env["AWS_CONTAINER_CREDENTIALS_FULL_URI"] == "http://169.254.170.23/v1/credentials"
    assert env["AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE"] == "/var/run/secrets/imds-proxy/token"
    assert "169.254.170.23" in env["NO_PROXY"]
    (source,) = pod["volumes"][0]["projected"]["sources"]
    assert source["serviceAccountToken"] == {
        "path": "token",
        "audience": "imds-proxy",
        "expirationSeconds": 3600,
    }


def test_the_shipped_policy_is_one_the_agent_accepts() -> None:
    from imds_proxy.kubernetes.policy import parse_policy

    config_map = by_name(render("base"))[("ConfigMap", "imds-proxy-policy")]
    policy = parse_policy(config_map["data"]["policy.yaml"].encode())
    assert policy.sessions == "per-pod" and not policy.bindings
