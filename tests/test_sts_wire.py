"""The STS client on the wire, against a local STS double that counts calls: how many calls one
attempt really makes, and source keys rotated on disk picked up without a restart."""

from __future__ import annotations

import secrets
import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from imds_proxy import config
from imds_proxy.aws.sts import AssumeRoleSource
from imds_proxy.aws.sts.clients import STS_CALLS_PER_ATTEMPT
from imds_proxy.errors import SourceCredentialsInvalid, SourceError

from fakes import ISSUED, FakeClock

ROLE_ARN = "arn:aws:iam::123456789012:role/wire"


class LocalSts(ThreadingHTTPServer):
    """Answers AssumeRole on loopback: 500 while `down`, InvalidClientTokenId for keys not in
    `valid_keys`, else fresh credentials. Counts calls by the key that signed them."""

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.down = False
        self.valid_keys: set[str] = set()
        self.calls: list[str] = []

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_port}"


class _Handler(BaseHTTPRequestHandler):
    server: LocalSts

    def do_POST(self) -> None:
        self.rfile.read(int(self.headers.get("Content-Length", "0")))
        signer = self.headers.get("Authorization", "").partition("Credential=")[2].partition("/")[0]
        self.server.calls.append(signer)
        if self.server.down:
            self._answer(500, _error("Receiver", "InternalFailure", "injected"))
        elif signer not in self.server.valid_keys:
            self._answer(403, _error("Sender", "InvalidClientTokenId", "The security token is invalid."))
        else:
            self._answer(200, _assumed())

    def _answer(self, status: int, body: str) -> None:
        data = body.encode()
        self.send_response(status)
        self.send_header("Content-Type", "text/xml")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, *_args: object) -> None:
        pass


def _error(kind: str, code: str, message: str) -> str:
    return (
        f"<ErrorResponse><Error><Type>{kind}</Type><Code>{code}</Code><Message>{message}</Message>"
        "</Error><RequestId>r</RequestId></ErrorResponse>"
    )


def _assumed() -> str:
    secret, token = secrets.token_urlsafe(30), secrets.token_urlsafe(90)
    ISSUED.update((secret, token))
    expires = (datetime.now(UTC) + timedelta(hours=1)).strftime("%Y-%m-%dT%H:%M:%SZ")
    return (
        '<AssumeRoleResponse xmlns="https://sts.amazonaws.com/doc/2011-06-15/"><AssumeRoleResult>'
        f"<Credentials><AccessKeyId>ASIAWIRE{secrets.token_hex(6).upper()}</AccessKeyId>"
        f"<SecretAccessKey>{secret}</SecretAccessKey><SessionToken>{token}</SessionToken>"
        f"<Expiration>{expires}</Expiration></Credentials><AssumedRoleUser>"
        "<Arn>arn:aws:sts::123456789012:assumed-role/wire/s</Arn><AssumedRoleId>AROAX:s</AssumedRoleId>"
        "</AssumedRoleUser></AssumeRoleResult></AssumeRoleResponse>"
    )


@pytest.fixture
def sts() -> Iterator[LocalSts]:
    server = LocalSts()
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield server
    server.shutdown()
    server.server_close()


@pytest.fixture
def keys_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The default chain's credentials file, with nothing else in the environment to find."""
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_PROFILE"):
        monkeypatch.delenv(name, raising=False)
    path = tmp_path / "credentials"
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(path))
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "no-config"))
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    return path


def write_keys(path: Path, key_id: str) -> None:
    path.write_text(f"[default]\naws_access_key_id = {key_id}\naws_secret_access_key = s3cr3t{key_id}\n")


def source_for(sts: LocalSts) -> AssumeRoleSource:
    spec = config.build({"role_arn": ROLE_ARN, "sts_endpoint_url": sts.url, "region": "us-east-1"}).role
    return AssumeRoleSource(spec, FakeClock())


async def test_one_attempt_makes_exactly_the_calls_the_client_config_states(
    sts: LocalSts, keys_file: Path
) -> None:
    write_keys(keys_file, "AKIAWIRESOURCE000001")
    sts.down = True
    with pytest.raises(SourceError):
        await source_for(sts).fetch()
    assert len(sts.calls) == STS_CALLS_PER_ATTEMPT == 3  # not 4, as `max_attempts: 3` made


async def test_source_keys_rotated_on_disk_are_used_after_sts_rejects_the_old_ones(
    sts: LocalSts, keys_file: Path
) -> None:
    old, new = "AKIAWIREOLDKEY000001", "AKIAWIRENEWKEY000001"
    write_keys(keys_file, old)
    sts.valid_keys = {old}
    source = source_for(sts)
    await source.fetch()
    sts.valid_keys = {new}  # the old key is deactivated, the new one written in its place
    write_keys(keys_file, new)
    with pytest.raises(SourceCredentialsInvalid):
        await source.fetch()  # signed with the client built from the old key
    creds = await source.fetch()  # the next attempt reads the file again
    assert creds.access_key_id.startswith("ASIAWIRE")
    assert sts.calls == [old, old, new]
