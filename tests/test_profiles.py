"""Roles from ~/.aws/config: botocore reads the profiles and resolves each role's source
(static keys, credential_process, another role, web identity); the final AssumeRole is ours,
and the credentials end up served by us over IMDS."""

from __future__ import annotations

import json
import logging
import random
import sys
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestClient

from imds_proxy import config
from imds_proxy.aws import profiles
from imds_proxy.aws.sts import AssumeRoleSource, build_sources, default_client
from imds_proxy.engine.policy import RefreshPolicy
from imds_proxy.engine.refresh import CredentialEngine
from imds_proxy.engine.tokens import TokenIssuer
from imds_proxy.errors import ConfigError
from imds_proxy.server.app import create_app

from conftest import StsRequests, caller_arn, get_credentials
from fakes import ISSUED, FakeClock

ACCOUNT = "123456789012"
BASE_KEY = "AKIAIMDSPROXYBASE001"

Write = Callable[[str], Path]


@pytest.fixture
def aws_config(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, local_aws: Any) -> Iterator[Write]:
    """A temporary AWS_CONFIG_FILE (written by the test; `{moto}` becomes the local STS) and
    an environment without the user's keys, profiles or IMDS."""
    import os

    for name in list(os.environ):
        if name.startswith(("AWS_", "IMDS_PROXY_")):
            monkeypatch.delenv(name)
    path = tmp_path / "aws-config"
    monkeypatch.setenv("AWS_CONFIG_FILE", str(path))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "no-credentials"))
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")

    def write(text: str) -> Path:
        head = (
            f"[profile base]\naws_access_key_id = {BASE_KEY}\naws_secret_access_key = base-secret\n\n"
            f"[services local]\nsts =\n  endpoint_url = {local_aws.url}\n\n"
        )
        path.write_text(head + text.replace("{moto}", local_aws.url))
        return path

    yield write


def role_profile(name: str, role: str, **settings: str) -> str:
    lines = [f"[profile {name}]", f"role_arn = arn:aws:iam::{ACCOUNT}:role/{role}", "services = local"]
    lines += [f"{k} = {v}" for k, v in settings.items()]
    return "\n".join(lines) + "\n\n"


def build(**values: Any) -> config.Config:
    return config.build({"listen": ["127.0.0.1:0"], **values}, profiles.read_profile)


AppClient = Callable[..., Awaitable[TestClient]]


async def serve_and_fetch(cfg: config.Config, aiohttp_client: AppClient, role: str) -> dict[str, Any]:
    """Our engine and IMDS app for cfg (real STS sources); the credential document it serves."""
    clock = FakeClock()
    sources, _ = build_sources(cfg, clock, default_client)
    engine = CredentialEngine(sources, RefreshPolicy.of(cfg), clock, rng=random.Random(1))
    app = create_app(cfg, engine, clock=clock, tokens=TokenIssuer(clock.seconds))
    return await get_credentials(await aiohttp_client(app), role)


async def test_source_profile_chain_ends_in_role_credentials_served_by_us(
    aws_config: Write, local_aws: Any, aiohttp_client: AppClient, sts_requests: StsRequests
) -> None:
    aws_config(
        role_profile(
            "dev",
            "dev",
            source_profile="base",
            external_id="team-42",
            role_session_name="alice-laptop",
            duration_seconds="1800",
        )
    )
    cfg = build(profile="dev")
    assert list(cfg.roles) == ["dev"]
    doc = await serve_and_fetch(cfg, aiohttp_client, "dev")
    assert doc["Code"] == "Success"
    assert caller_arn(doc, local_aws) == f"arn:aws:sts::{ACCOUNT}:assumed-role/dev/alice-laptop"
    [sent] = sts_requests("AssumeRole")
    assert sent["_signer"] == BASE_KEY  # botocore resolved the source profile's keys
    assert (sent["ExternalId"], sent["DurationSeconds"]) == ("team-42", "1800")


async def test_credential_process_source_is_run_by_botocore(
    aws_config: Write, local_aws: Any, aiohttp_client: AppClient, tmp_path: Path, sts_requests: StsRequests
) -> None:
    marker = tmp_path / "process-ran"
    script = tmp_path / "creds.py"
    script.write_text(
        "import json, pathlib\n"
        f"pathlib.Path({str(marker)!r}).write_text('yes')\n"
        'print(json.dumps({"Version": 1, "AccessKeyId": "AKIAFROMPROCESS00001", "SecretAccessKey": "p"}))\n'
    )
    aws_config(
        f"[profile proc]\ncredential_process = {sys.executable} {script}\n\n"
        + role_profile("deploy", "deploy", source_profile="proc", role_session_name="from-process")
    )
    doc = await serve_and_fetch(build(profile="deploy"), aiohttp_client, "deploy")
    assert marker.read_text() == "yes"
    assert caller_arn(doc, local_aws) == f"arn:aws:sts::{ACCOUNT}:assumed-role/deploy/from-process"
    assert sts_requests("AssumeRole")[0]["_signer"] == "AKIAFROMPROCESS00001"


async def test_a_role_profile_as_source_is_chaining_and_is_clamped_to_one_hour(
    aws_config: Write,
    local_aws: Any,
    aiohttp_client: AppClient,
    sts_requests: StsRequests,
    caplog: pytest.LogCaptureFixture,
) -> None:
    aws_config(
        role_profile("hop", "hop", source_profile="base", role_session_name="first-hop")
        + role_profile("target", "target", source_profile="hop", duration_seconds="7200")
    )
    doc = await serve_and_fetch(build(profile="target"), aiohttp_client, "target")
    assert caller_arn(doc, local_aws).startswith(f"arn:aws:sts::{ACCOUNT}:assumed-role/target/")
    first, ours = sts_requests("AssumeRole")
    assert first["RoleArn"].endswith(":role/hop") and first["_signer"] == BASE_KEY  # botocore's hop
    assert ours["RoleArn"].endswith(":role/target") and ours["DurationSeconds"] == "3600"
    assert ours["_signer"] != BASE_KEY  # signed with the hop role's keys
    assert any("role chaining" in r.getMessage() and r.levelno == logging.WARNING for r in caplog.records)


async def test_web_identity_profile_rereads_the_token_file_at_each_refresh(
    aws_config: Write, local_aws: Any, tmp_path: Path, sts_requests: StsRequests, aiohttp_client: AppClient
) -> None:
    token = tmp_path / "token"
    token.write_text("oidc-token-one\n")
    aws_config(role_profile("ci", "ci", web_identity_token_file=str(token), role_session_name="ci-run"))
    cfg = build(profile="ci")
    doc = await serve_and_fetch(cfg, aiohttp_client, "ci")
    assert caller_arn(doc, local_aws) == f"arn:aws:sts::{ACCOUNT}:assumed-role/ci/ci-run"
    token.write_text("oidc-token-two")  # the CI runner / kubelet rotated it in place
    source = AssumeRoleSource(cfg.role, FakeClock())
    creds = await source.fetch()
    ISSUED.update((creds.secret_access_key, creds.session_token))
    sent = sts_requests("AssumeRoleWithWebIdentity")
    assert [s["WebIdentityToken"] for s in sent] == ["oidc-token-one", "oidc-token-two"]
    assert all(s["_signer"] == "" for s in sent)  # unsigned: the token is the proof


async def test_a_missing_web_identity_token_file_is_a_retryable_error(
    aws_config: Write, tmp_path: Path
) -> None:
    from imds_proxy.errors import SourceError

    aws_config(role_profile("ci", "ci", web_identity_token_file=str(tmp_path / "not-yet")))
    with pytest.raises(SourceError, match="cannot read the web identity token file") as raised:
        await AssumeRoleSource(build(profile="ci").role, FakeClock()).fetch()
    assert raised.value.retryable


async def test_credential_source_environment(
    aws_config: Write,
    local_aws: Any,
    aiohttp_client: AppClient,
    monkeypatch: pytest.MonkeyPatch,
    sts_requests: StsRequests,
) -> None:
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "AKIAFROMENVIRONMENT1")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "env-secret")
    aws_config(role_profile("envrole", "envrole", credential_source="Environment"))
    doc = await serve_and_fetch(build(profile="envrole"), aiohttp_client, "envrole")
    assert caller_arn(doc, local_aws).startswith(f"arn:aws:sts::{ACCOUNT}:assumed-role/envrole/")
    assert sts_requests("AssumeRole")[0]["_signer"] == "AKIAFROMENVIRONMENT1"


def test_instance_and_container_credential_sources_are_chaining(aws_config: Write) -> None:
    aws_config(
        role_profile("a", "a", credential_source="Ec2InstanceMetadata")
        + role_profile("b", "b", credential_source="Environment")
        + role_profile("c", "c", source_profile="a")
        + role_profile("d", "d", source_profile="base")
    )
    chained = {name: profiles.source_is_a_role(build(profile=name).role) for name in "abcd"}
    assert chained == {"a": True, "b": False, "c": True, "d": False}


@pytest.mark.parametrize(
    ("text", "says"),
    [
        ("", "'dev' is not in"),
        ("[profile dev]\nregion = us-east-1\n", "has no role_arn"),
        (role_profile("dev", "dev"), "no source_profile, credential_source or web_identity_token_file"),
        (role_profile("dev", "dev", source_profile="ghost"), "source_profile 'ghost'"),
        ("[profile dev\nrole_arn = x\n", "cannot parse the AWS config file"),
    ],
)
def test_bad_profiles_are_one_line_config_errors(aws_config: Write, text: str, says: str) -> None:
    path = aws_config(text)
    with pytest.raises(ConfigError) as raised:
        build(profile="dev")
    assert raised.value.key == "profile"
    assert says in str(raised.value) and "\n" not in str(raised.value)
    if "is not in" in says:
        assert str(path) in str(raised.value)


def test_profile_keys_are_read_through_botocore(aws_config: Write) -> None:
    aws_config(
        role_profile(
            "dev",
            "dev",
            source_profile="base",
            external_id="x-1",
            duration_seconds="900",
            role_session_name="{user}-ci",
            mfa_serial=f"arn:aws:iam::{ACCOUNT}:mfa/alice",
            region="eu-west-1",
        )
    )
    spec = build(profile="dev").role
    assert (spec.external_id, spec.duration, spec.region) == ("x-1", 900, "eu-west-1")
    assert spec.mfa_serial == f"arn:aws:iam::{ACCOUNT}:mfa/alice"
    assert spec.session_name.endswith("-ci") and "{" not in spec.session_name
    assert json.dumps(spec.source_description) and "profile dev <- profile base" in spec.source_description
