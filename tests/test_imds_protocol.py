"""The IMDSv2 wire protocol, over HTTP against the real app on loopback."""

from __future__ import annotations

import asyncio
import json
import re
from datetime import datetime

import aiohttp
import pytest

from imds_proxy.engine.tokens import GRACE_SECONDS
from imds_proxy.errors import AssumeRoleDenied

from conftest import ROLE, TOKEN, TTL, AppFactory, get_credentials, get_token
from fakes import FakeClock, FakeSource

WIRE_TIME = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ")
CREDS = "/latest/meta-data/iam/security-credentials"


async def test_token_put_returns_the_token_and_echoes_the_ttl(imds: AppFactory) -> None:
    client = await imds()
    resp = await client.put("/latest/api/token", headers={TTL: "21600"})
    body = await resp.text()
    assert resp.status == 200
    assert resp.headers[TTL] == "21600"
    assert resp.content_type == "text/plain"
    assert body and body == body.strip()


@pytest.mark.parametrize("ttl", [None, "", "0", "21601", "-5", "abc", "60.5"])
async def test_token_put_without_a_valid_ttl_is_400(imds: AppFactory, ttl: str | None) -> None:
    client = await imds()
    headers = {} if ttl is None else {TTL: ttl}
    resp = await client.put("/latest/api/token", headers=headers)
    assert resp.status == 400
    assert TTL in await resp.text()


@pytest.mark.parametrize("ttl", ["1", "300", "21600"])
async def test_token_put_accepts_the_whole_ttl_range(imds: AppFactory, ttl: str) -> None:
    client = await imds()
    resp = await client.put("/latest/api/token", headers={TTL: ttl})
    assert resp.status == 200
    assert resp.headers[TTL] == ttl


async def test_token_put_with_x_forwarded_for_is_403(imds: AppFactory) -> None:
    client = await imds()
    resp = await client.put("/latest/api/token", headers={TTL: "60", "X-Forwarded-For": "10.0.0.1"})
    assert resp.status == 403


async def test_get_with_x_forwarded_for_is_403(imds: AppFactory) -> None:
    client = await imds()
    token = await get_token(client)
    resp = await client.get(f"{CREDS}/", headers={TOKEN: token, "X-Forwarded-For": "10.0.0.1"})
    assert resp.status == 403


async def test_token_put_on_a_versioned_path_is_403(imds: AppFactory) -> None:
    client = await imds()
    resp = await client.put("/2021-03-23/api/token", headers={TTL: "60"})
    assert resp.status == 403


async def test_wrong_method_on_the_token_path_is_405(imds: AppFactory) -> None:
    client = await imds()
    resp = await client.get("/latest/api/token")
    assert resp.status == 405
    assert resp.headers["Allow"] == "PUT"


async def test_wrong_method_on_metadata_is_405(imds: AppFactory) -> None:
    client = await imds()
    for method in ("POST", "PUT", "DELETE"):
        resp = await client.request(method, "/latest/meta-data/instance-id")
        assert resp.status == 405, method
        assert resp.headers["Allow"] == "GET, HEAD"


async def test_get_without_token_is_401_when_imdsv1_is_disabled(imds: AppFactory) -> None:
    client = await imds()
    resp = await client.get(f"{CREDS}/")
    assert resp.status == 401


async def test_get_without_token_is_served_when_imdsv1_is_enabled(imds: AppFactory) -> None:
    client = await imds(imdsv1="enabled")
    resp = await client.get(f"{CREDS}/")
    assert resp.status == 200
    assert await resp.text() == ROLE


async def test_invalid_token_is_401_even_with_imdsv1_enabled(imds: AppFactory) -> None:
    client = await imds(imdsv1="enabled")
    resp = await client.get(f"{CREDS}/", headers={TOKEN: "not-a-token"})
    assert resp.status == 401


async def test_expired_token_is_401(imds: AppFactory, clock: FakeClock) -> None:
    client = await imds()
    token = await get_token(client, ttl=60)
    clock.advance(seconds=60 + GRACE_SECONDS)
    resp = await client.get(f"{CREDS}/", headers={TOKEN: token})
    assert resp.status == 401


async def test_token_is_accepted_a_few_seconds_past_its_ttl(imds: AppFactory, clock: FakeClock) -> None:
    client = await imds()
    token = await get_token(client, ttl=60)
    clock.advance(seconds=61)
    resp = await client.get(f"{CREDS}/", headers={TOKEN: token})
    assert resp.status == 200


async def test_token_from_another_daemon_is_401(imds: AppFactory, aiohttp_client, engine, clock) -> None:  # type: ignore[no-untyped-def]
    first = await imds()
    second = await imds()
    token = await get_token(first)
    resp = await second.get(f"{CREDS}/", headers={TOKEN: token})
    assert resp.status == 401


@pytest.mark.parametrize("path", [CREDS, f"{CREDS}/", f"/latest//meta-data/iam/{'security-credentials'}//"])
async def test_role_listing_is_the_bare_role_name(imds: AppFactory, path: str) -> None:
    client = await imds()
    token = await get_token(client)
    resp = await client.get(path, headers={TOKEN: token})
    assert resp.status == 200
    assert await resp.text() == ROLE  # no trailing newline: botocore pastes it into a URL


@pytest.mark.parametrize("suffix", ["", "/"])
async def test_credentials_document_has_exactly_ec2s_fields(imds: AppFactory, suffix: str) -> None:
    client = await imds()
    token = await get_token(client)
    resp = await client.get(f"{CREDS}/{ROLE}{suffix}", headers={TOKEN: token})
    assert resp.status == 200
    doc = json.loads(await resp.text())
    assert set(doc) == {
        "Code",
        "LastUpdated",
        "Type",
        "AccessKeyId",
        "SecretAccessKey",
        "Token",
        "Expiration",
    }
    assert doc["Code"] == "Success"
    assert doc["Type"] == "AWS-HMAC"
    assert WIRE_TIME.fullmatch(doc["Expiration"]) and WIRE_TIME.fullmatch(doc["LastUpdated"])
    assert datetime.strptime(doc["Expiration"], "%Y-%m-%dT%H:%M:%SZ")  # botocore's exact parse


async def test_credentials_document_expiration_is_the_sources(
    imds: AppFactory, clock: FakeClock, source: FakeSource
) -> None:
    client = await imds()
    doc = await get_credentials(client)
    assert doc["Expiration"] == (clock() + source.lifetime).strftime("%Y-%m-%dT%H:%M:%SZ")
    assert doc["LastUpdated"] == clock().strftime("%Y-%m-%dT%H:%M:%SZ")


async def test_extended_path_adds_the_account_id(imds: AppFactory) -> None:
    client = await imds()
    token = await get_token(client)
    listing = await client.get("/latest/meta-data/iam/security-credentials-extended/", headers={TOKEN: token})
    assert await listing.text() == ROLE
    doc = await get_credentials(client, extended=True)
    assert doc["AccountId"] == "123456789012"
    assert doc["Code"] == "Success"
    plain = await get_credentials(client)
    assert plain["AccessKeyId"] == doc["AccessKeyId"]  # same cached set on both paths


@pytest.mark.parametrize("kind", ["security-credentials", "security-credentials-extended"])
async def test_unknown_role_is_404(imds: AppFactory, kind: str) -> None:
    client = await imds()
    token = await get_token(client)
    resp = await client.get(f"/latest/meta-data/iam/{kind}/other-role", headers={TOKEN: token})
    assert resp.status == 404


async def test_unknown_path_is_404(imds: AppFactory) -> None:
    client = await imds()
    token = await get_token(client)
    for path in ("/latest/meta-data/nope", "/latest/user-data", "/favicon.ico", "/latest/meta-data/iam/x/y"):
        resp = await client.get(path, headers={TOKEN: token})
        assert resp.status == 404, path


async def test_iam_info_names_the_instance_profile(imds: AppFactory) -> None:
    client = await imds()
    token = await get_token(client)
    doc = json.loads(await (await client.get("/latest/meta-data/iam/info", headers={TOKEN: token})).text())
    assert doc["Code"] == "Success"
    assert doc["InstanceProfileArn"] == f"arn:aws:iam::123456789012:instance-profile/{ROLE}"
    assert re.fullmatch(r"AIPA[A-Z2-7]{17}", doc["InstanceProfileId"])
    assert WIRE_TIME.fullmatch(doc["LastUpdated"])


async def test_metadata_listing_has_no_trailing_newline(imds: AppFactory) -> None:
    client = await imds()
    token = await get_token(client)
    for path in ("/latest/meta-data/", "/latest/meta-data"):
        body = await (await client.get(path, headers={TOKEN: token})).text()
        items = body.split("\n")
        assert "iam/" in items and "instance-id" in items and "placement/" in items
        assert not body.endswith("\n")


async def test_placement_is_consistent(imds: AppFactory) -> None:
    client = await imds(region="eu-west-1")
    token = await get_token(client)

    async def get(path: str) -> str:
        resp = await client.get(path, headers={TOKEN: token})
        assert resp.status == 200, path
        return await resp.text()

    region = await get("/latest/meta-data/placement/region")
    az = await get("/latest/meta-data/placement/availability-zone/")  # the CLI asks with a slash
    assert region == "eu-west-1"
    assert az[:-1] == region and az[-1].isalpha()  # the AWS CLI drops the last letter
    doc = json.loads(await get("/latest/dynamic/instance-identity/document"))
    assert doc["region"] == region
    assert doc["availabilityZone"] == az
    assert doc["accountId"] == "123456789012"
    assert doc["instanceId"] == await get("/latest/meta-data/instance-id")
    assert WIRE_TIME.fullmatch(doc["pendingTime"])
    assert doc["version"] == "2017-09-30"


async def test_identity_values_are_configurable(imds: AppFactory) -> None:
    client = await imds(instance_id="i-0123456789abcdef0", availability_zone="us-east-1c")
    token = await get_token(client)
    iid = await (await client.get("/latest/meta-data/instance-id", headers={TOKEN: token})).text()
    az = await (
        await client.get("/latest/meta-data/placement/availability-zone", headers={TOKEN: token})
    ).text()
    assert (iid, az) == ("i-0123456789abcdef0", "us-east-1c")


async def test_head_is_answered_without_a_body(imds: AppFactory) -> None:
    client = await imds()
    token = await get_token(client)
    resp = await client.head("/latest/meta-data/instance-id", headers={TOKEN: token})
    assert resp.status == 200
    assert await resp.read() == b""


async def test_browser_requests_are_403(imds: AppFactory) -> None:
    client = await imds()
    resp = await client.put("/latest/api/token", headers={TTL: "60", "Origin": "https://evil.example"})
    assert resp.status == 403
    resp = await client.put("/latest/api/token", headers={TTL: "60", "Sec-Fetch-Mode": "cors"})
    assert resp.status == 403


async def test_dns_rebinding_host_is_403(imds: AppFactory) -> None:
    client = await imds()
    resp = await client.put("/latest/api/token", headers={TTL: "60", "Host": "evil.example:8169"})
    assert resp.status == 403
    for host in ("localhost:8169", "127.0.0.1", "[::1]:8169", "169.254.169.254"):
        resp = await client.put("/latest/api/token", headers={TTL: "60", "Host": host})
        assert resp.status == 200, host


async def test_unusable_role_answers_like_ec2(imds: AppFactory, source: FakeSource) -> None:
    source.fail_with = AssumeRoleDenied("the trust policy of the role does not trust the caller")
    client = await imds()
    token = await get_token(client)
    resp = await client.get(f"{CREDS}/{ROLE}", headers={TOKEN: token})
    assert resp.status == 200
    doc = json.loads(await resp.text())
    assert doc["Code"] == "AssumeRoleUnauthorizedAccess"
    assert "trust policy" in doc["Message"]
    assert not {"AccessKeyId", "SecretAccessKey", "Token"} & set(doc)


async def test_a_thousand_concurrent_cold_clients_cause_one_fetch(
    imds: AppFactory, source: FakeSource
) -> None:
    source.gate = asyncio.Event()
    client = await imds()
    token = await get_token(client)
    url = client.make_url(f"{CREDS}/{ROLE}")
    arrived = 0

    async def fetch(session: aiohttp.ClientSession) -> str:
        nonlocal arrived
        async with session.get(url, headers={TOKEN: token}) as resp:
            arrived += 1
            return str(json.loads(await resp.text())["AccessKeyId"])

    # A connection each (no pool limit): a node starting many processes at once.
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0)) as session:
        tasks = [asyncio.create_task(fetch(session)) for _ in range(1000)]
        await asyncio.sleep(1.0)
        assert arrived == 0  # no client is answered before the one fetch ends
        source.gate.set()
        keys = await asyncio.gather(*tasks)
    assert source.calls == 1
    assert len(keys) == 1000 and len(set(keys)) == 1


async def test_served_line_is_logged_with_key_suffix_only(
    imds: AppFactory, caplog: pytest.LogCaptureFixture
) -> None:
    client = await imds()
    doc = await get_credentials(client)
    served = [r.getMessage() for r in caplog.records if "served credentials" in r.getMessage()]
    assert served and doc["AccessKeyId"][-4:] in served[0]
    assert doc["AccessKeyId"] not in served[0]
