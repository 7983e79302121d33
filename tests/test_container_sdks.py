"""Real clients on the container channel: botocore's container provider and the AWS SDK for
JavaScript v3 (default chain, fromHttp, fromContainerMetadata) get the served credentials
with FULL_URI plus the token or the token file, and are refused with a wrong token. Hosts
outside loopback and AWS's link-local addresses are refused by the SDKs themselves, before
any traffic: the reason our URLs and docs use 127.0.0.1. Several roles: each listener's
clients see its own role."""

from __future__ import annotations

import asyncio
import os
from pathlib import Path
from typing import Any

import botocore.session
import pytest
from botocore.credentials import ContainerProvider
from botocore.exceptions import CredentialRetrievalError
from botocore.utils import ContainerMetadataFetcher

from container_support import TOKEN, Served, ServerFactory, now_clock, run_node, serve, two_roles
from procs import dropped, isolated_vars

pytestmark = pytest.mark.sdk

PATH = "/v1/credentials"
#: TEST-NET-1 (RFC 5737): never routed. The SDKs refuse it before sending anything.
ELSEWHERE = "http://192.0.2.10:8169/v1/credentials"


@pytest.fixture
async def served(aiohttp_server: ServerFactory) -> Served:
    return await serve(aiohttp_server, two_roles(), now_clock())


def served_key(served: Served, role: str = "one") -> str:
    creds = served.engine.cached(role)
    assert creds is not None
    return creds.access_key_id


def is_served(served: Served, role: str, secret_key: str) -> bool:
    """Whether these are `role`'s credentials, by the secret (a bool, so a failing assert
    does not print the secret)."""
    creds = served.engine.cached(role)
    return creds is not None and creds.secret_access_key == secret_key


def isolate(monkeypatch: pytest.MonkeyPatch, home: Path, **env: str) -> None:
    """botocore in this process sees no AWS set-up but `env` (and never probes real IMDS)."""
    for name in [n for n in os.environ if dropped(n)]:
        monkeypatch.delenv(name)
    for name, value in isolated_vars(home).items():
        monkeypatch.setenv(name, value)
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    for name, value in env.items():
        monkeypatch.setenv(name, value)


async def botocore_credentials() -> Any:
    session = botocore.session.Session()
    creds = await asyncio.to_thread(session.get_credentials)
    assert creds is not None, "botocore's default chain found no credentials"
    return creds


# --- botocore ---------------------------------------------------------------------------


async def test_botocore_chain_uses_full_uri_and_token(
    served: Served, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    isolate(
        monkeypatch,
        tmp_path,
        AWS_CONTAINER_CREDENTIALS_FULL_URI=served.base + PATH,
        AWS_CONTAINER_AUTHORIZATION_TOKEN=TOKEN,
    )
    creds = await botocore_credentials()
    assert creds.method == "container-role"
    assert creds.access_key == served_key(served)
    assert creds.account_id == "123456789012"  # botocore reads AccountId


async def test_botocore_chain_reads_the_token_file(
    served: Served, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    token_file = tmp_path / "token"
    token_file.write_text(TOKEN)  # no newline: botocore refuses one
    isolate(
        monkeypatch,
        tmp_path,
        AWS_CONTAINER_CREDENTIALS_FULL_URI=served.base + PATH + "/two",
        AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE=str(token_file),
    )
    creds = await botocore_credentials()
    assert is_served(served, "two", creds.secret_key)


async def test_botocore_with_a_wrong_token_gets_no_credentials(served: Served) -> None:
    env = {
        "AWS_CONTAINER_CREDENTIALS_FULL_URI": served.base + PATH,
        "AWS_CONTAINER_AUTHORIZATION_TOKEN": "x" * 20,
    }
    provider = ContainerProvider(environ=env, fetcher=ContainerMetadataFetcher(sleep=lambda _s: None))
    with pytest.raises(CredentialRetrievalError) as e:
        await asyncio.to_thread(provider.load)
    assert "403" in str(e.value)


def test_botocore_refuses_plain_http_outside_loopback_and_link_local() -> None:
    env = {"AWS_CONTAINER_CREDENTIALS_FULL_URI": ELSEWHERE, "AWS_CONTAINER_AUTHORIZATION_TOKEN": TOKEN}
    with pytest.raises(ValueError, match="Unsupported host"):
        ContainerProvider(environ=env).load()


async def test_each_listener_gives_botocore_its_own_role_over_imds(
    aiohttp_server: ServerFactory, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    cfg = two_roles(listen=["127.0.0.1:0=one", "127.0.0.1:0=two"])
    clock = now_clock()
    first = await serve(aiohttp_server, cfg, clock, role="one")
    second = await serve(aiohttp_server, cfg, clock, role="two", engine=first.engine, sources=first.sources)
    for listener, role in ((first, "one"), (second, "two")):
        isolate(monkeypatch, tmp_path, AWS_EC2_METADATA_SERVICE_ENDPOINT=listener.base + "/")
        monkeypatch.delenv("AWS_EC2_METADATA_DISABLED")
        creds = await botocore_credentials()
        assert creds.method == "iam-role"
        assert is_served(first, role, creds.secret_key), f"the listener for {role} served another role"
        assert not is_served(first, "two" if role == "one" else "one", creds.secret_key)


# --- the AWS SDK for JavaScript v3 ------------------------------------------------------


async def test_js_default_chain_uses_full_uri_and_token(served: Served, tmp_path: Path) -> None:
    env = {
        "AWS_CONTAINER_CREDENTIALS_FULL_URI": served.base + PATH,
        "AWS_CONTAINER_AUTHORIZATION_TOKEN": TOKEN,
    }
    result = await run_node("chain", tmp_path, env)
    assert result.code == 0, result.stderr
    assert result.out["accessKeyId"] == served_key(served)


async def test_js_default_chain_reads_the_token_file(served: Served, tmp_path: Path) -> None:
    token_file = tmp_path / "token"
    token_file.write_text(TOKEN)
    env = {
        "AWS_CONTAINER_CREDENTIALS_FULL_URI": served.base + PATH + "/two",
        "AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE": str(token_file),
    }
    result = await run_node("chain", tmp_path, env)
    assert result.code == 0, result.stderr
    assert result.out["accessKeyId"] == served_key(served, "two")


async def test_js_from_container_metadata_accepts_our_127_0_0_1_url(served: Served, tmp_path: Path) -> None:
    env = {
        "AWS_CONTAINER_CREDENTIALS_FULL_URI": served.base + PATH,
        "AWS_CONTAINER_AUTHORIZATION_TOKEN": TOKEN,
    }
    assert served.base.startswith("http://127.0.0.1:")
    result = await run_node("container-metadata", tmp_path, env)
    assert result.code == 0, result.stderr
    assert result.out["accessKeyId"] == served_key(served)


async def test_js_with_a_wrong_token_is_refused(served: Served, tmp_path: Path) -> None:
    env = {
        "AWS_CONTAINER_CREDENTIALS_FULL_URI": served.base + PATH,
        "AWS_CONTAINER_AUTHORIZATION_TOKEN": "x" * 20,
    }
    result = await run_node("http", tmp_path, env)
    assert result.code == 1
    assert "403" in result.stderr


async def test_js_from_container_metadata_refuses_other_loopback_addresses(
    served: Served, tmp_path: Path
) -> None:
    """Why the URLs we hand out say 127.0.0.1: fromContainerMetadata takes only that or
    localhost (and localhost may resolve to ::1). It refuses before sending anything."""
    url = served.base.replace("127.0.0.1", "127.0.0.2") + PATH
    env = {"AWS_CONTAINER_CREDENTIALS_FULL_URI": url, "AWS_CONTAINER_AUTHORIZATION_TOKEN": TOKEN}
    result = await run_node("container-metadata", tmp_path, env)
    assert result.code == 1
    assert "not a valid container metadata service hostname" in result.stderr


async def test_js_refuses_plain_http_outside_loopback_and_link_local(tmp_path: Path) -> None:
    env = {"AWS_CONTAINER_CREDENTIALS_FULL_URI": ELSEWHERE, "AWS_CONTAINER_AUTHORIZATION_TOKEN": TOKEN}
    result = await run_node("http", tmp_path, env)
    assert result.code == 1
    assert "URL not accepted" in result.stderr
