"""A real `imds-proxy serve` on loopback, with the IMDS and container channels, over moto's STS:
for tests that attack it with raw bytes and read every line it logs."""

from __future__ import annotations

import socket
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from container_support import TOKEN as CONTAINER_TOKEN
from procs import Daemon, daemon, imds_credentials, isolated_env

SOURCE_KEYS = {"AWS_ACCESS_KEY_ID": "AKIAIOSFODNN7EXAMPLE", "AWS_SECRET_ACCESS_KEY": "example-secret-key"}


@contextmanager
def live_daemon(
    tmp_path: Path, local_aws: Any, log_format: str = "text", prefix: Sequence[str] = ()
) -> Iterator[tuple[Daemon, int]]:
    """The daemon and its port; `prefix` runs it under another command (e.g. prlimit)."""
    token_file = tmp_path / "container-token"
    token_file.write_text(CONTAINER_TOKEN)
    config = tmp_path / "config.toml"
    config.write_text(
        f'role_arn = "{local_aws.role_arn}"\nsts_endpoint_url = "{local_aws.url}"\nregion = "us-east-1"\n'
        f'listen = ["127.0.0.1:0"]\ncontainer_token_file = "{token_file}"\nlog_format = "{log_format}"\n'
        'log_level = "debug"\n'
    )
    args = ["serve", "--config", str(config)]
    env = isolated_env(tmp_path, {**SOURCE_KEYS, "AWS_EC2_METADATA_DISABLED": "true"})
    with daemon(args, env, prefix=prefix) as d:
        port = int(d.wait_for(r"serving IMDS for role \S+ on http://127\.0\.0\.1:(\d+)/").group(1))
        yield d, port


def send_raw(port: int, data: bytes, timeout: float = 5) -> bytes:
    """Send raw bytes on a new connection; return what comes back until the server closes or
    stops talking."""
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as s:
        s.sendall(data)
        chunks = []
        try:
            while chunk := s.recv(65536):
                chunks.append(chunk)
                if b"\r\n\r\n" in b"".join(chunks) and b"Content-Length: " in chunks[0]:
                    head, _, body = b"".join(chunks).partition(b"\r\n\r\n")
                    length = int(head.split(b"Content-Length: ")[1].split(b"\r\n")[0])
                    if len(body) >= length:
                        break
        except TimeoutError:
            pass
    return b"".join(chunks)


def status_of(answer: bytes) -> int:
    return int(answer.split(b" ", 2)[1]) if answer.startswith(b"HTTP/") else 0


def credentials(port: int) -> dict[str, Any]:
    return imds_credentials(f"http://127.0.0.1:{port}/")


def alive(port: int) -> bool:
    try:
        return credentials(port)["Code"] == "Success"
    except OSError:
        return False
