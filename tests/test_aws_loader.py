"""Our botocore sessions share one data loader per data path, parsing botocore's JSON into plain
dicts: the data, and the STS clients made from it, are botocore's own."""

from __future__ import annotations

from pathlib import Path

import botocore.session
import pytest
from botocore.loaders import Loader

from imds_proxy.aws import loader, profiles


@pytest.fixture(autouse=True)
def _no_user_config(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("AWS_PROFILE", "AWS_DEFAULT_PROFILE", "AWS_DATA_PATH", "AWS_REGION", "AWS_DEFAULT_REGION"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_CONFIG_FILE", "/dev/null")
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", "/dev/null")


def test_sessions_share_one_loader_per_data_path(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    first = loader.session().get_component("data_loader")
    assert profiles.explicit_session().get_component("data_loader") is first
    monkeypatch.setenv("AWS_DATA_PATH", str(tmp_path))
    other = loader.session().get_component("data_loader")
    assert other is not first
    assert other.search_paths[0] == str(tmp_path)  # searched first, as botocore does


def test_the_data_is_botocores_as_plain_dicts() -> None:
    ours = loader.session().get_component("data_loader")
    for name in ("endpoints", "partitions", "sdk-default-configuration", "_retry"):
        data = ours.load_data(name)
        assert data == Loader().load_data(name), name
        assert type(data) is dict, name
    model = ours.load_service_model("sts", "service-2")  # a .json.gz file
    assert model == Loader().load_service_model("sts", "service-2")


@pytest.mark.parametrize("region", ["us-east-1", "eu-west-1", "cn-north-1", "us-gov-west-1", "us-iso-east-1"])
def test_sts_clients_resolve_as_botocores_own(region: str) -> None:
    keys = {"aws_access_key_id": "AKIAIOSFODNN7EXAMPLE", "aws_secret_access_key": "x"}
    ours = loader.session().create_client("sts", region_name=region, **keys)
    theirs = botocore.session.Session().create_client("sts", region_name=region, **keys)
    assert (ours.meta.endpoint_url, ours.meta.partition) == (theirs.meta.endpoint_url, theirs.meta.partition)
