"""The container-credentials route over HTTP against the real app on loopback: authorization,
the document, roles by path, the client map (two loopback source addresses), and logs."""

from __future__ import annotations

import re

import aiohttp
import pytest
from aiohttp.test_utils import TestServer

from imds_proxy.errors import AssumeRoleDenied

from conftest import TOKEN as IMDS_TOKEN
from conftest import AppFactory, get_token
from container_support import ONE_ARN, TOKEN, TWO_ARN, ServerFactory, fetch, now_clock, serve, two_roles

WIRE_TIME = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ")
PATH = "/v1/credentials"


async def test_right_token_gets_the_container_document(imds: AppFactory) -> None:
    client = await imds(container_token=TOKEN)
    resp = await client.get(PATH, headers={"Authorization": TOKEN})
    assert resp.status == 200
    assert resp.content_type == "application/json"
    doc = await resp.json()
    assert set(doc) == {"AccessKeyId", "SecretAccessKey", "Token", "Expiration", "AccountId", "RoleArn"}
    assert all(isinstance(v, str) for v in doc.values())  # the JS SDK checks the four are strings
    assert WIRE_TIME.fullmatch(doc["Expiration"])
    assert doc["RoleArn"] == "arn:aws:iam::123456789012:role/test-role"
    assert doc["AccountId"] == "123456789012"


async def test_missing_authorization_is_401_with_a_json_message(imds: AppFactory) -> None:
    client = await imds(container_token=TOKEN)
    resp = await client.get(PATH)
    assert resp.status == 401
    doc = await resp.json()
    assert doc["Code"] == "Unauthorized" and "Authorization" in doc["Message"]


async def test_wrong_token_is_403_with_a_json_message(imds: AppFactory) -> None:
    client = await imds(container_token=TOKEN)
    resp = await client.get(PATH, headers={"Authorization": TOKEN[:-1] + "X"})
    assert resp.status == 403
    assert (await resp.json())["Code"] == "AccessDenied"


async def test_bearer_prefix_is_refused_as_sdks_send_the_token_verbatim(imds: AppFactory) -> None:
    client = await imds(container_token=TOKEN)
    resp = await client.get(PATH, headers={"Authorization": f"Bearer {TOKEN}"})
    assert resp.status == 403


async def test_an_imds_session_token_does_not_open_the_container_route(imds: AppFactory) -> None:
    client = await imds(container_token=TOKEN)
    session = await get_token(client)
    resp = await client.get(PATH, headers={IMDS_TOKEN: session})
    assert resp.status == 401


async def test_imds_still_needs_its_session_token(imds: AppFactory) -> None:
    client = await imds(container_token=TOKEN)
    resp = await client.get("/latest/meta-data/iam/security-credentials/", headers={"Authorization": TOKEN})
    assert resp.status == 401


async def test_without_a_token_configured_the_route_is_off(imds: AppFactory) -> None:
    client = await imds()
    resp = await client.get(PATH, headers={"Authorization": TOKEN})
    assert resp.status == 404
    assert "container_token_file" in (await resp.json())["Message"]


async def test_an_unauthorized_caller_learns_nothing_about_roles(imds: AppFactory) -> None:
    client = await imds(container_token=TOKEN)
    for path in (f"{PATH}/test-role", f"{PATH}/no-such-role"):
        resp = await client.get(path, headers={"Authorization": "guess"})
        assert resp.status == 403, path


@pytest.mark.parametrize(
    "path", [f"{PATH}/test-role", f"{PATH}/", f"{PATH}/test-role/", f"{PATH}//test-role"]
)
async def test_role_path_forms_are_served(imds: AppFactory, path: str) -> None:
    client = await imds(container_token=TOKEN)
    resp = await client.get(path, headers={"Authorization": TOKEN})
    assert resp.status == 200, path


@pytest.mark.parametrize("path", [f"{PATH}/no-such-role", f"{PATH}test-role", f"{PATH}/test-role/more"])
async def test_unknown_roles_and_paths_are_404(imds: AppFactory, path: str) -> None:
    client = await imds(container_token=TOKEN)
    resp = await client.get(path, headers={"Authorization": TOKEN})
    assert resp.status == 404, path
    assert (await resp.json())["Code"] == "NotFound"


async def test_other_methods_are_405(imds: AppFactory) -> None:
    client = await imds(container_token=TOKEN)
    resp = await client.post(PATH, headers={"Authorization": TOKEN})
    assert resp.status == 405
    assert resp.headers["Allow"] == "GET, HEAD"


async def test_browser_requests_are_refused_here_too(imds: AppFactory) -> None:
    client = await imds(container_token=TOKEN)
    resp = await client.get(PATH, headers={"Authorization": TOKEN, "Origin": "https://evil.example"})
    assert resp.status == 403


async def test_unusable_role_is_503_with_the_reason(imds: AppFactory, source) -> None:  # type: ignore[no-untyped-def]
    source.fail_with = AssumeRoleDenied("the trust policy of the role does not trust the caller")
    client = await imds(container_token=TOKEN)
    resp = await client.get(PATH, headers={"Authorization": TOKEN})
    assert resp.status == 503
    doc = await resp.json()
    assert doc["Code"] == "AssumeRoleUnauthorizedAccess" and "trust policy" in doc["Message"]


async def test_logs_show_key_suffix_and_never_the_token(
    imds: AppFactory, caplog: pytest.LogCaptureFixture
) -> None:
    client = await imds(container_token=TOKEN)
    doc = await (await client.get(PATH, headers={"Authorization": TOKEN})).json()
    await client.get(PATH, headers={"Authorization": "wrong-token-value-here"})
    lines = [r.getMessage() for r in caplog.records if r.name.startswith("imds_proxy")]
    served = [line for line in lines if line.startswith("served credentials channel=container")]
    assert served and doc["AccessKeyId"][-4:] in served[0] and doc["AccessKeyId"] not in served[0]
    assert any("wrong authorization token" in line for line in lines)
    assert not any(TOKEN in line or "wrong-token-value-here" in line for line in lines)


# --- several roles ----------------------------------------------------------------------


async def test_each_configured_role_has_its_path(aiohttp_server: ServerFactory) -> None:
    served = await serve(aiohttp_server, two_roles(), now_clock())
    _, one = await fetch(f"{served.base}{PATH}/one")
    _, two = await fetch(f"{served.base}{PATH}/two")
    _, default = await fetch(f"{served.base}{PATH}")
    assert (one["RoleArn"], two["RoleArn"], default["RoleArn"]) == (ONE_ARN, TWO_ARN, ONE_ARN)


async def test_bare_path_serves_the_listeners_role(aiohttp_server: ServerFactory) -> None:
    served = await serve(aiohttp_server, two_roles(listen=["127.0.0.1:0=two"]), now_clock(), role="two")
    _, doc = await fetch(f"{served.base}{PATH}")
    assert doc["RoleArn"] == TWO_ARN


# --- the client map, from two loopback source addresses ----------------------------------

MAP = {"clients": {"127.0.0.2": "one", "127.0.0.3/32": "two"}}


async def test_client_map_gives_each_address_only_its_role(aiohttp_server: ServerFactory) -> None:
    served = await serve(aiohttp_server, two_roles(**MAP), now_clock())
    status2, doc2 = await fetch(f"{served.base}{PATH}", source="127.0.0.2")
    status3, doc3 = await fetch(f"{served.base}{PATH}", source="127.0.0.3")
    assert (status2, status3) == (200, 200)
    assert (doc2["RoleArn"], doc3["RoleArn"]) == (ONE_ARN, TWO_ARN)
    status, doc = await fetch(f"{served.base}{PATH}/two", source="127.0.0.3")
    assert status == 200 and doc["RoleArn"] == TWO_ARN


async def test_asking_for_another_clients_role_is_404_and_logged(
    aiohttp_server: ServerFactory, caplog: pytest.LogCaptureFixture
) -> None:
    served = await serve(aiohttp_server, two_roles(**MAP), now_clock())
    status, doc = await fetch(f"{served.base}{PATH}/two", source="127.0.0.2")
    assert status == 404 and "AccessKeyId" not in doc
    refusals = [r.getMessage() for r in caplog.records if r.getMessage().startswith("refused status=404")]
    assert any("client=127.0.0.2" in m and "role=two" in m for m in refusals), refusals


async def test_unmapped_client_gets_nothing(aiohttp_server: ServerFactory) -> None:
    served = await serve(aiohttp_server, two_roles(**MAP), now_clock())
    for path in (PATH, f"{PATH}/one", f"{PATH}/two"):
        status, _ = await fetch(f"{served.base}{path}", source="127.0.0.4")
        assert status == 404, path


async def test_client_map_still_needs_the_token(aiohttp_server: ServerFactory) -> None:
    served = await serve(aiohttp_server, two_roles(**MAP), now_clock())
    status, _ = await fetch(f"{served.base}{PATH}", source="127.0.0.2", token="not-the-token-at-all")
    assert status == 403


async def test_imds_on_loopback_is_not_restricted_by_the_client_map(aiohttp_server: ServerFactory) -> None:
    """Processes on the daemon's own host (and the health check) keep IMDS; the map's IMDS
    rule for network clients is tested in test_clients.py."""
    served: TestServer = (await serve(aiohttp_server, two_roles(**MAP), now_clock())).server
    async with aiohttp.ClientSession() as http:
        put = http.put(
            served.make_url("/latest/api/token"), headers={"X-aws-ec2-metadata-token-ttl-seconds": "60"}
        )
        async with put as r:
            session = await r.text()
        url = served.make_url("/latest/meta-data/iam/security-credentials/one")
        async with http.get(url, headers={IMDS_TOKEN: session}) as r:
            assert r.status == 200
