"""The README's and docs/sidecars.md's examples stay true: every TOML snippet is a valid
config (or, with a `description`, a valid sandbox scenario), every YAML snippet parses, and
every container URL uses a host the SDKs accept."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path
from urllib.parse import urlsplit

import pytest
import yaml

from imds_proxy import config
from imds_proxy.config import container as channel
from imds_proxy.sandbox.scenarios import file as scenario_file

ROOT = Path(__file__).parent.parent
DOCS = [ROOT / "README.md", ROOT / "docs" / "sidecars.md"]


def blocks(language: str) -> list[tuple[str, str]]:
    found = []
    for doc in DOCS:
        for i, body in enumerate(re.findall(rf"```{language}\n(.*?)```", doc.read_text(), re.S)):
            found.append((f"{doc.name}#{language}{i}", body))
    return found


@pytest.mark.parametrize(("where", "body"), blocks("toml"), ids=[w for w, _ in blocks("toml")])
def test_toml_examples_are_valid_configs(where: str, body: str, tmp_path: Path) -> None:
    values = tomllib.loads(body)
    if "description" in values:  # a sandbox scenario file
        scenario_file.parse(body, where, "example")
        return
    if "role_arn" not in values and "roles" not in values:
        values["role_arn"] = "arn:aws:iam::123456789012:role/app"  # a fragment about other keys
    if "container_token_file" in values:  # load() reads it (or creates it): not in /run here
        values["container_token_file"] = str(tmp_path / "token")

    def profile(name: str) -> dict[str, str]:  # a ~/.aws/config with every profile named
        return {"role_arn": f"arn:aws:iam::123456789012:role/{name}", "source_profile": "base"}

    config.build(values, profile)


@pytest.mark.parametrize(("where", "body"), blocks("yaml"), ids=[w for w, _ in blocks("yaml")])
def test_yaml_examples_parse(where: str, body: str) -> None:
    assert yaml.safe_load(body)


def test_every_container_url_in_the_docs_is_one_sdks_accept() -> None:
    text = "\n".join(doc.read_text() for doc in DOCS)
    urls = re.findall(r"http://[^\s'`\"]+/v1/credentials", text)
    assert len(urls) >= 5
    for url in urls:
        host = urlsplit(url).hostname
        assert host is not None and channel.sdk_accepts(host), url
