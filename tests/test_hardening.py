"""Attacks on a real daemon over loopback: malformed bytes carrying tokens never reach a log, no
line can be forged, relayed and absolute-URI requests are refused, every answer is a 4xx."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from live_daemon import CONTAINER_TOKEN, alive, credentials, live_daemon, send_raw, status_of

HOST = b"Host: 127.0.0.1\r\n"
TTL = b"X-aws-ec2-metadata-token-ttl-seconds: 60\r\n"


def put_token(port: int) -> str:
    answer = send_raw(port, b"PUT /latest/api/token HTTP/1.1\r\n" + HOST + TTL + b"\r\n")
    assert status_of(answer) == 200
    return answer.partition(b"\r\n\r\n")[2].decode()


@pytest.mark.parametrize("log_format", ["text", "json"])
def test_malformed_requests_carrying_tokens_leave_neither_in_the_log(
    tmp_path: Path, local_aws: Any, log_format: str
) -> None:
    with live_daemon(tmp_path, local_aws, log_format) as (d, port):
        imds_token = put_token(port)
        tokens = {"container": CONTAINER_TOKEN.encode(), "imds": imds_token.encode()}
        for name, token in tokens.items():
            header = b"Authorization: " if name == "container" else b"X-aws-ec2-metadata-token: "
            attacks = [
                header + token + b"\x01\r\n",  # a bad byte after the token
                header + b"\x7f" + token + b"\r\n",
                header + token + b"\r\n" + b"Bad Header Name: x\r\n",
                header + token + b"\r\n" + b"Content-Length: nope\r\n",
                b"X: " + b"a" * 9000 + b"\r\n" + header + token + b"\r\n",  # a line too long
            ]
            for attack in attacks:
                answer = send_raw(port, b"GET /v1/credentials HTTP/1.1\r\n" + HOST + attack + b"\r\n")
                assert 400 <= status_of(answer) < 500, answer[:100]
        assert alive(port)
        d.wait_for(r"refused malformed request status=400")
        d.stop()
    logged = "\n".join(d.stderr + d.stdout)
    assert "refused malformed request" in logged
    for name, token in tokens.items():
        assert token.decode() not in logged, f"the {name} token was logged"
        assert token.decode()[:16] not in logged, f"part of the {name} token was logged"
    assert "Traceback" not in logged


def test_a_percent_encoded_newline_in_a_path_writes_one_escaped_line(tmp_path: Path, local_aws: Any) -> None:
    forged = "2026-12-01T19:40:00 INFO imds_proxy.imds: served credentials client=203.0.113.66"
    path = "/x%0A" + forged.replace(" ", "%20") + "%0D%1B[2J"
    with live_daemon(tmp_path, local_aws) as (d, port):
        answer = send_raw(port, f"GET {path} HTTP/1.1\r\n".encode() + HOST + b"\r\n")
        assert status_of(answer) == 401
        line = d.wait_for(r"refused status=401 .* GET /x").string
        d.stop()
    assert "/x\\n2026-12-01T19:40:00 INFO" in line and "\\r\\x1b[2J" in line
    assert not [x for x in d.stderr if x.startswith("2026-12-01T19:40:00")]
    assert [x for x in d.stderr if "client=203.0.113.66" in x] == [line]  # that one line only


@pytest.mark.parametrize(
    ("headers", "status", "reason"),
    [
        (b"Forwarded: for=203.0.113.9\r\n", 403, b"Forwarded is not accepted"),
        (b"Via: 1.1 squid\r\n", 403, b"Via is not accepted"),
        (b"X-Forwarded-For: 203.0.113.9\r\n", 403, b"X-Forwarded-For is not accepted"),
        (b"Expect: \xff\xfe\r\n", 417, b"only 100-continue"),
        (b"Expect: 100-continue\xff\r\nOrigin: http://attacker.example\r\n", 403, b"browser requests"),
    ],
)
def test_relayed_requests_and_odd_expectations_get_a_clean_4xx(
    live: tuple[int, str], headers: bytes, status: int, reason: bytes
) -> None:
    port, _ = live
    answer = send_raw(port, b"PUT /latest/api/token HTTP/1.1\r\n" + HOST + TTL + headers + b"\r\n")
    assert status_of(answer) == status and reason in answer


def test_an_absolute_uri_naming_another_host_is_refused(live: tuple[int, str]) -> None:
    port, _ = live
    for target in (b"http://attacker.example/latest/api/token", b"http://127.0.0.2:80/latest/api/token"):
        answer = send_raw(port, b"PUT " + target + b" HTTP/1.1\r\n" + HOST + TTL + b"\r\n")
        assert status_of(answer) == 403 and b"names another host" in answer
    same = f"http://127.0.0.1:{port}/latest/api/token".encode()
    answer = send_raw(
        port,
        b"PUT " + same + b" HTTP/1.1\r\n" + f"Host: 127.0.0.1:{port}\r\n".encode() + TTL + b"\r\n",
    )
    assert status_of(answer) == 200  # the same host as Host: what a client may send


ODD_LINES = [b"BREW / HTTP/1.1", b"G\x01T / HTTP/1.1", b"GET /\xff\xfe HTTP/1.1", b"GET / HTTP/9.9"]


@pytest.mark.parametrize("request_line", [*ODD_LINES, b"PRI * HTTP/2.0"])
def test_odd_methods_and_bad_encodings_get_a_4xx(live: tuple[int, str], request_line: bytes) -> None:
    port, _ = live
    answer = send_raw(port, request_line + b"\r\n" + HOST + b"\r\n")
    assert 400 <= status_of(answer) < 500, answer[:80]


@pytest.fixture(scope="module")
def live(tmp_path_factory: pytest.TempPathFactory, local_aws: Any) -> Iterator[tuple[int, str]]:
    with live_daemon(tmp_path_factory.mktemp("live"), local_aws) as (_, port):
        token = credentials(port)["Token"]
        yield port, token
