"""The admin endpoint and the audit trail, from outside: a real `serve` process, known traffic,
/metrics parsed with prometheus_client's parser, the audit lines read back from its log."""

from __future__ import annotations

import json
import socket
import urllib.error
import urllib.request
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
from prometheus_client.parser import text_string_to_metric_families

from fakes import remember
from procs import daemon, imds_credentials, isolated_env, run

SOURCE_KEYS = {"AWS_ACCESS_KEY_ID": "AKIAIOSFODNN7EXAMPLE", "AWS_SECRET_ACCESS_KEY": "example-secret-key"}
TTL = "X-aws-ec2-metadata-token-ttl-seconds"


def samples(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """Every sample of a scrape, by name and sorted labels."""
    out = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            out[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return out


def get(url: str, headers: dict[str, str] | None = None) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(urllib.request.Request(url, headers=headers or {}), timeout=10) as r:
            return r.status, r.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, e.read().decode()


def serve_args(local_aws: Any, *extra: str) -> list[str]:
    return [
        "serve", "--role-arn", local_aws.role_arn, "--sts-endpoint-url", local_aws.url,
        "--region", "us-east-1", "--listen", "127.0.0.1:0", *extra,
    ]  # fmt: skip


def test_metrics_count_known_traffic_and_audit_lines_name_each_channel(
    tmp_path: Path, local_aws: Any
) -> None:
    token_file = tmp_path / "container-token"
    args = serve_args(local_aws, "--admin-listen", "127.0.0.1:0", "--log-format", "json")
    args += ["--imdsv1", "enabled"]
    args += ["--container-token-file", str(token_file)]
    with daemon(args, isolated_env(tmp_path, SOURCE_KEYS)) as d:
        base = d.wait_for(r"serving IMDS for role \S+ on (http://\S+/)").group(1)
        admin = d.wait_for(r"admin endpoint on (http://\S+/)").group(1)
        assert get(admin + "healthz") == (200, "ok\n")
        assert get(admin + "readyz") == (200, "ready\n")
        docs = [remember(imds_credentials(base)) for _ in range(2)]  # 2 tokens, 2 IMDSv2 sets
        status, body = get(base + "latest/meta-data/iam/security-credentials/imds-proxy-sandbox")  # IMDSv1
        remember(json.loads(body))
        token = token_file.read_text()
        agent = {"Authorization": token, "User-Agent": 'evil" role=admin'}
        status, body = get(base + "v1/credentials", agent)
        assert status == 200
        remember(json.loads(body))
        assert get(base + "v1/credentials", {"Authorization": "wrong"})[0] == 403
        assert get(base + "latest/meta-data/", {"X-Forwarded-For": "10.0.0.1"})[0] == 403
        scraped = samples(get(admin + "metrics")[1])
        audit = [json.loads(line) for line in d.wait_for_all(r'"event": "credentials_served"', 4)]
    role = (("role", "imds-proxy-sandbox"),)
    assert scraped[("imds_proxy_tokens_issued_total", ())] == 2
    for channel, count in (("imdsv2", 2), ("imdsv1", 1), ("container", 1)):
        assert scraped[("imds_proxy_credentials_served_total", (("channel", channel), *role))] == count
    assert scraped[("imds_proxy_clients_refused_total", (("reason", "wrong_token"),))] == 1
    assert scraped[("imds_proxy_clients_refused_total", (("reason", "forwarded"),))] == 1
    listener = base.removeprefix("http://").rstrip("/")
    token_key = (("listener", listener), ("route", "token"), ("status", "200"))
    assert scraped[("imds_proxy_requests_total", token_key)] == 2
    assert scraped[("imds_proxy_sts_requests_total", (("outcome", "success"), *role))] == 1
    assert scraped[("imds_proxy_sts_request_seconds_count", role)] == 1
    assert ("imds_proxy_refresh_failures_total", role) not in scraped  # no failure: no sample
    expiry = scraped[("imds_proxy_credentials_expiration_timestamp_seconds", role)]
    assert int(expiry) == datetime.strptime(docs[0]["Expiration"], "%Y-%m-%dT%H:%M:%S%z").timestamp()

    assert [a["channel"] for a in audit] == ["imdsv2", "imdsv2", "imdsv1", "container"]
    for a in audit:
        assert a["client"] == "127.0.0.1" and a["role"] == "imds-proxy-sandbox"
        assert a["key"] == "…" + docs[0]["AccessKeyId"][-4:] and a["time"]
    assert audit[0]["token_hash"].startswith("sha256:") and audit[0]["token_hash"] != audit[1]["token_hash"]
    assert audit[2]["token_hash"] is None
    assert audit[3]["user_agent"] == 'evil" role=admin'  # JSON escapes it: one line, one object
    log = "\n".join(d.stderr)
    for secret in (docs[0]["SecretAccessKey"], docs[0]["Token"], token):
        assert secret not in log


def test_audit_text_line_escapes_the_user_agent(tmp_path: Path, local_aws: Any) -> None:
    with daemon(serve_args(local_aws, "--admin-listen", "off"), isolated_env(tmp_path, SOURCE_KEYS)) as d:
        base = d.wait_for(r"serving IMDS for role \S+ on (http://\S+/)").group(1)
        put = urllib.request.Request(base + "latest/api/token", method="PUT", headers={TTL: "60"})
        with urllib.request.urlopen(put, timeout=10) as r:
            token = r.read().decode()
        url = base + "latest/meta-data/iam/security-credentials/imds-proxy-sandbox"
        status, body = get(url, {"X-aws-ec2-metadata-token": token, "User-Agent": 'ua" role=admin'})
        assert status == 200
        remember(json.loads(body))
        line = d.wait_for(r"served credentials channel=imdsv2 .*").group(0)
    assert 'ua="ua\\" role=admin"' in line  # quoted: no field can be forged
    assert "admin endpoint" not in "\n".join(d.stderr)  # off means off


def test_busy_default_admin_port_is_one_warning_and_serving_goes_on(tmp_path: Path, local_aws: Any) -> None:
    holder = socket.socket()
    try:
        holder.bind(("127.0.0.1", 9169))
        holder.listen()
    except OSError:
        pass  # someone else holds it: busy either way
    try:
        env = isolated_env(tmp_path, SOURCE_KEYS)
        del env["IMDS_PROXY_ADMIN_LISTEN"]  # the default port, which the holder has
        with daemon(serve_args(local_aws), env) as d:
            base = d.wait_for(r"serving IMDS for role \S+ on (http://\S+/)").group(1)
            remember(imds_credentials(base))
            warnings = [line for line in d.stderr if "admin endpoint off" in line]
    finally:
        holder.close()
    assert len(warnings) == 1 and "127.0.0.1:9169" in warnings[0] and "--admin-listen" in warnings[0]


def test_busy_admin_port_that_was_asked_for_exits_1_in_one_line(tmp_path: Path, local_aws: Any) -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        args = serve_args(local_aws, "--admin-listen", f"127.0.0.1:{port}")
        result = run(args, isolated_env(tmp_path, SOURCE_KEYS))
    assert result.returncode == 1
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in result.stderr
    assert lines[0].startswith("imds-proxy: admin endpoint: cannot listen on")
    assert "--admin-listen" in lines[0]


@pytest.mark.parametrize("admin", ["127.0.0.1:18169", "0.0.0.0:18169"])
def test_admin_on_a_credential_address_is_a_config_error(tmp_path: Path, admin: str) -> None:
    args = ["serve", "--role-arn", "arn:aws:iam::123456789012:role/r", "--listen", "127.0.0.1:18169"]
    result = run([*args, "--admin-listen", admin], isolated_env(tmp_path))
    assert result.returncode == 2
    assert "admin_listen" in result.stderr and "serves credentials" in result.stderr
