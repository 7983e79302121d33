"""Fuzzing the live daemon with hypothesis: random methods, paths, header names and values,
TTLs, tokens and raw malformed bytes. Every answer is a 2xx or an expected 4xx, the daemon stays
alive, and its memory stays bounded. Loopback only; bounded in examples and time."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from live_daemon import alive, live_daemon, send_raw, status_of

#: A few thousand examples in CI (3,000 raw, 1,000 whole requests, ~1 min), a few hundred locally;
#: each is one connection.
CI = bool(os.environ.get("CI"))
FUZZ = settings(
    max_examples=1000 if CI else 200,
    deadline=None,
    derandomize=True,  # the same examples every run: a failure can be replayed
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
#: What a request may be answered with (2xx only for what a client is entitled to).
EXPECTED = {200, 400, 401, 403, 404, 405, 417}

METHODS = st.sampled_from(
    ["GET", "PUT", "HEAD", "POST", "DELETE", "OPTIONS", "PATCH", "BREW", "get", "TRACE"]
)
PATHS = st.one_of(
    st.sampled_from(
        [
            "/latest/api/token",
            "/latest/meta-data/iam/security-credentials/",
            "/v1/credentials",
            "//latest//api//token",
            "/2021-03-23/api/token",
        ]
    ),
    st.text(alphabet=st.characters(min_codepoint=0x21, max_codepoint=0x7E), max_size=60).map(
        lambda p: "/" + p
    ),
)
HEADER_NAMES = st.sampled_from(
    [
        "X-aws-ec2-metadata-token-ttl-seconds",
        "X-aws-ec2-metadata-token",
        "Authorization",
        "Expect",
        "Forwarded",
        "Content-Length",
        "Transfer-Encoding",
        "Origin",
        "X-Custom",
    ]
)
VALUES = st.one_of(
    st.integers(-(10**6), 10**6).map(str), st.binary(max_size=40).map(lambda b: b.decode("latin-1"))
)


@pytest.fixture(scope="module")
def port(tmp_path_factory: pytest.TempPathFactory, local_aws: Any) -> Iterator[tuple[int, int]]:
    with live_daemon(tmp_path_factory.mktemp("fuzz"), local_aws, log_format="json") as (d, port):
        yield port, d.proc.pid


def rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise AssertionError("no VmRSS")


def request(method: str, path: str, headers: list[tuple[str, str]], host: str = "127.0.0.1") -> bytes:
    # Connection: close, so an answer without a body (HEAD) ends with the connection.
    lines = [
        f"{method} {path} HTTP/1.1",
        f"Host: {host}",
        "Connection: close",
        *(f"{k}: {v}" for k, v in headers),
    ]
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")


@FUZZ
@given(method=METHODS, path=PATHS, headers=st.lists(st.tuples(HEADER_NAMES, VALUES), max_size=4))
def test_random_requests_get_an_expected_answer(
    port: tuple[int, int], method: str, path: str, headers: Any
) -> None:
    answer = send_raw(port[0], request(method, path, headers), timeout=10)
    assert status_of(answer) in EXPECTED, answer[:120]


@settings(FUZZ, max_examples=3000 if CI else 300)
@given(raw=st.binary(min_size=1, max_size=200))
def test_raw_bytes_get_a_4xx_or_nothing(port: tuple[int, int], raw: bytes) -> None:
    answer = send_raw(port[0], raw + b"\r\n\r\n", timeout=10)
    # Bytes that never finish a request are closed at the idle timeout without an answer.
    assert answer == b"" or 400 <= status_of(answer) < 500, answer[:120]


def test_after_the_fuzzing_the_daemon_serves_and_its_memory_is_bounded(port: tuple[int, int]) -> None:
    before = rss_kib(port[1])
    for _ in range(300):
        send_raw(
            port[0], request("GET", "/latest/x%0A" + "y" * 200, [("X-aws-ec2-metadata-token", "z" * 100)])
        )
    assert alive(port[0])
    assert rss_kib(port[1]) < before + 20 * 1024  # no growth per request: well under 20 MiB more
