"""The node agent's pure parts: session names, the policy file's errors, the rate limit on a fake
clock, Host parsing, token expiry reading, and the command line's answers to bad input."""

from __future__ import annotations

import base64
import json
from pathlib import Path

import pytest

from imds_proxy.cli import main
from imds_proxy.config.roles import SESSION_NAME_RE
from imds_proxy.kubernetes.gate import host_of
from imds_proxy.kubernetes.policy import PolicyError, parse_policy
from imds_proxy.kubernetes.ratelimit import PeerLimiter
from imds_proxy.kubernetes.review import token_expiry, token_hash
from imds_proxy.kubernetes.sessions import session_name
from imds_proxy.kubernetes.settings import RateLimit

ARN = "arn:aws:iam::123456789012:role/app"
ONE = f"{{namespace: a, serviceAccount: b, roleArn: {ARN}}}"


def test_session_names_are_sanitised_for_sts() -> None:
    assert session_name("shop", "web-7d9f") == "k8s-shop-web-7d9f"
    assert session_name("a b", "c:d") == "k8s-a-b-c-d"


def test_long_session_names_are_cut_with_a_hash_so_they_do_not_collide() -> None:
    a, b = session_name("n" * 63, "pod-a"), session_name("n" * 63, "pod-b")
    assert len(a) == 64 and SESSION_NAME_RE.fullmatch(a) and a != b


@pytest.mark.parametrize(
    ("text", "says"),
    [
        ("bindings: [{namespace: a, serviceAccount: b, roleArn: nope}]", "is not a role ARN"),
        (f"bindings: [{{namespace: a, serviceAccount: b, roleArn: {ARN}, duration: 60}}]", "duration"),
        (
            f"bindings: [{{namespace: a, serviceAccount: b, roleArn: {ARN}, tags: {{kubernetes-x: y}}}}]",
            "set by the agent",
        ),
        ("sessions: sometimes", "sessions must be one of"),
        ("bindings: [{namespace: a}]", "serviceAccount must be"),
        ("bindings: {a: b}", "must be a list"),
        (
            f"bindings: [{ONE}, {ONE}]",
            "bound twice",
        ),
        ("{{{", "is not YAML"),
        ("role: x", "unknown keys role"),
    ],
)
def test_a_policy_that_cannot_be_used_says_what_to_fix(text: str, says: str) -> None:
    with pytest.raises(PolicyError, match=says):
        parse_policy(text.encode())


def test_the_rate_limit_refills_by_the_clock() -> None:
    now = [0.0]
    limiter = PeerLimiter(RateLimit(per_second=1, burst=2), lambda: now[0])
    assert [limiter.allow("10.0.0.1") for _ in range(3)] == [True, True, False]
    assert limiter.allow("10.0.0.2")  # each peer has its own bucket
    now[0] += 1.0
    assert limiter.allow("10.0.0.1") and not limiter.allow("10.0.0.1")


@pytest.mark.parametrize(
    ("header", "host"),
    [
        ("169.254.170.23", "169.254.170.23"),
        ("169.254.170.23:80", "169.254.170.23"),
        ("[fd00:ec2::23]", "fd00:ec2::23"),
        ("[fd00:ec2::23]:80", "fd00:ec2::23"),
        ("evil.example", None),
        (None, None),
    ],
)
def test_host_headers_are_read_as_addresses(header: str | None, host: str | None) -> None:
    assert host_of(header) == host


def test_token_expiry_is_read_from_the_jwt_and_garbage_has_none() -> None:
    payload = base64.urlsafe_b64encode(json.dumps({"exp": 1700000000}).encode()).decode().rstrip("=")
    assert token_expiry(f"h.{payload}.s") == 1700000000
    assert token_expiry("not a jwt") is None
    assert len(token_hash("x")) == 64


def test_node_agent_without_a_node_name_says_how_to_set_it(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("NODE_NAME", raising=False)
    assert main(["node-agent"]) == 2
    assert "NODE_NAME" in capsys.readouterr().err


def test_node_agent_with_an_unusable_policy_says_so(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "kubeconfig").write_text(
        "apiVersion: v1\nkind: Config\nclusters: [{name: c, cluster: {server: 'http://127.0.0.1:9'}}]\n"
        "users: [{name: u, user: {token: t}}]\n"
        "contexts: [{name: x, context: {cluster: c, user: u}}]\ncurrent-context: x\n"
    )
    (tmp_path / "policy.yaml").write_text("sessions: sometimes\n")
    args = [
        "node-agent",
        "--node-name",
        "n",
        "--kubeconfig",
        str(tmp_path / "kubeconfig"),
        "--policy-file",
        str(tmp_path / "policy.yaml"),
        "--listen",
        "127.0.0.1:0",
        "--admin-listen",
        "off",
    ]
    assert main(args) == 1
    err = capsys.readouterr().err
    assert "sessions must be one of" in err and "Traceback" not in err
