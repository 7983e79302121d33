"""Shared fixtures: the real app on loopback, fake clock and source, moto's STS, and the log check."""

from __future__ import annotations

import base64
import json
import logging
import os
import random
import tempfile
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl

import boto3
import pytest
from aiohttp import web
from aiohttp.test_utils import BaseTestServer, TestClient, TestServer
from serving import ProxyServer

from imds_proxy import config
from imds_proxy.config import Config
from imds_proxy.engine.policy import RefreshPolicy
from imds_proxy.engine.refresh import CredentialEngine
from imds_proxy.engine.tokens import TokenIssuer
from imds_proxy.runtime import logs
from imds_proxy.server.app import App, create_app

from fakes import ISSUED, ROLE_ARN, FakeClock, FakeSource, remember

#: moto's request recorder (`sts_requests`) writes here; moto reads it once, when imported.
_RECORDING = Path(tempfile.gettempdir()) / f"imds-proxy-moto-requests-{os.getpid()}.jsonl"
os.environ["MOTO_RECORDER_FILEPATH"] = str(_RECORDING)

ROLE = "test-role"
TTL = "X-aws-ec2-metadata-token-ttl-seconds"
TOKEN = "X-aws-ec2-metadata-token"

#: Loggers the daemon lets through (logs.QUIET silences the libraries that log secrets).
OUR_LOGGERS = ("imds_proxy", "aiohttp")
#: The test servers' aiohttp error logging passes the daemon's redaction point too.
logs.redact_framework_errors()


def make_config(**values: Any) -> Config:
    base: dict[str, Any] = {"role_arn": ROLE_ARN, "listen": ["127.0.0.1:0"]}
    base.update(values)
    return config.build(base)


@pytest.fixture(autouse=True)
def no_secrets_in_logs(caplog: pytest.LogCaptureFixture) -> Iterator[None]:
    """Every test: nothing our code logged contains a secret, session token, IMDSv2 token or
    container authorization token issued so far."""
    yield
    for record in caplog.records:
        if not record.name.startswith(OUR_LOGGERS):
            continue
        text = record.getMessage() + (record.exc_text or "")
        leaked = [s for s in ISSUED if s in text]
        assert not leaked, f"secret leaked in log line from {record.name}: {record.getMessage()[:80]}"


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def source(clock: FakeClock) -> FakeSource:
    return FakeSource(clock)


@pytest.fixture
def engine(source: FakeSource, clock: FakeClock) -> CredentialEngine:
    cfg = make_config()
    return CredentialEngine({ROLE: source}, RefreshPolicy.of(cfg), clock, rng=random.Random(7))


AppFactory = Callable[..., Awaitable[TestClient]]


@pytest.fixture
async def aiohttp_server(
    aiohttp_server: Callable[..., Awaitable[TestServer]],
) -> AsyncIterator[Callable[..., Awaitable[BaseTestServer]]]:
    """pytest-aiohttp's, and for one of our apps (server.app.App) its real listener, a Site."""
    ours: list[ProxyServer] = []

    async def start(app: App | web.Application, **kwargs: Any) -> BaseTestServer:
        if isinstance(app, App):
            server = ProxyServer(app, **kwargs)
            await server.start_server()
            ours.append(server)
            return server
        return await aiohttp_server(app, **kwargs)

    yield start
    while ours:
        await ours.pop().close()


@pytest.fixture
def aiohttp_client(
    aiohttp_client: Callable[..., Awaitable[TestClient]],
) -> Callable[..., Awaitable[TestClient]]:
    """pytest-aiohttp's, and for one of our apps a client of its real listener, a Site."""

    async def start(app: App | web.Application | BaseTestServer, **kwargs: Any) -> TestClient:
        return await aiohttp_client(ProxyServer(app) if isinstance(app, App) else app, **kwargs)

    return start


@pytest.fixture
def imds(
    aiohttp_client: Callable[..., Awaitable[TestClient]],
    engine: CredentialEngine,
    clock: FakeClock,
) -> AppFactory:
    """Start the real app on loopback (fake clock, fake source, no background timer) and
    return an HTTP client for it. Keyword arguments are config values."""

    async def start(**values: Any) -> TestClient:
        cfg = make_config(**values)
        app = create_app(
            cfg,
            engine,
            clock=clock,
            tokens=TokenIssuer(clock.seconds),
        )
        return await aiohttp_client(app)

    return start


async def get_token(client: TestClient, ttl: int = 21600) -> str:
    resp = await client.put("/latest/api/token", headers={TTL: str(ttl)})
    assert resp.status == 200
    token = await resp.text()
    ISSUED.add(token)
    return token


async def get_credentials(client: TestClient, role: str = ROLE, extended: bool = False) -> dict[str, Any]:
    token = await get_token(client)
    kind = "security-credentials-extended" if extended else "security-credentials"
    resp = await client.get(f"/latest/meta-data/iam/{kind}/{role}", headers={TOKEN: token})
    assert resp.status == 200
    doc: dict[str, Any] = json.loads(await resp.text())
    return remember(doc)


@pytest.fixture(autouse=True)
def _library_debug_stays_out(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)


#: The role `local_aws` creates (moto's default account; IAM not enforced).
DEFAULT_ROLE = "imds-proxy-sandbox"
SANDBOX_ACCOUNT = "123456789012"  # moto's default account
#: Trusted by EC2 and the account, as an instance profile's role is.
EC2_TRUST = {
    "Version": "2012-10-17",
    "Statement": [
        {
            "Effect": "Allow",
            "Principal": {
                "Service": "ec2.amazonaws.com",
                "AWS": f"arn:aws:iam::{SANDBOX_ACCOUNT}:root",
            },
            "Action": "sts:AssumeRole",
        }
    ],
}


def create_default_role(aws: Any, name: str = DEFAULT_ROLE) -> str:
    """A role trusted by EC2 and its account, allowed to read S3, in an unenforced local AWS.
    Returns its ARN."""
    iam = aws.client("iam")
    arn: str = iam.create_role(
        RoleName=name,
        AssumeRolePolicyDocument=json.dumps(EC2_TRUST),
        Description="imds-proxy sandbox instance role",
    )["Role"]["Arn"]
    iam.put_role_policy(
        RoleName=name,
        PolicyName="read-s3",
        PolicyDocument=json.dumps(
            {
                "Version": "2012-10-17",
                "Statement": [{"Effect": "Allow", "Action": ["s3:Get*", "s3:List*"], "Resource": "*"}],
            }
        ),
    )
    return arn


@pytest.fixture(scope="session")
def local_aws() -> Iterator[Any]:
    """moto's server on a loopback port for the whole session, with the sandbox role in it."""
    from imds_proxy.sandbox import local_aws as sandbox

    aws = sandbox.LocalAws(port=0).start()
    aws.role_arn = create_default_role(aws)
    yield aws
    aws.stop()
    _RECORDING.unlink(missing_ok=True)


#: Reads what moto's STS received: `requests("AssumeRole")` → each call's form parameters,
#: plus the signing key id under "_signer".
StsRequests = Callable[[str], list[dict[str, str]]]


@pytest.fixture
def sts_requests(local_aws: Any) -> Iterator[StsRequests]:
    """moto's own request recorder, on for one test: what really reached its STS (moto keeps
    few AssumeRole parameters in its backend; this shows them all)."""
    from moto.moto_api import recorder

    recorder.reset_recording()
    recorder.start_recording()

    def read(action: str) -> list[dict[str, str]]:
        found = []
        for line in recorder.download_recording().splitlines():
            entry = json.loads(line)
            body = entry.get("body") or ""
            if entry.get("body_encoded"):
                body = base64.b64decode(body).decode()
            params = dict(parse_qsl(body))
            if params.get("Action") != action:
                continue
            auth = entry["headers"].get("Authorization", "")
            params["_signer"] = auth.partition("Credential=")[2].partition("/")[0]
            found.append(params)
        return found

    yield read
    recorder.stop_recording()
    recorder.reset_recording()


def caller_arn(doc: dict[str, Any], local_aws: Any) -> str:
    """Who moto's STS says the served credentials belong to."""
    sts = boto3.Session().client(
        "sts",
        region_name="us-east-1",
        endpoint_url=local_aws.url,
        aws_access_key_id=doc["AccessKeyId"],
        aws_secret_access_key=doc["SecretAccessKey"],
        aws_session_token=doc["Token"],
    )
    return str(sts.get_caller_identity()["Arn"])
