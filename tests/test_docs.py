"""The README's and docs/*.md's examples stay true: every TOML snippet is a valid config (or,
with a `description`, a valid sandbox scenario), every YAML snippet parses, every container URL
uses a host the SDKs accept, and every relative link reaches an existing file (and heading)."""

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
DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]


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


def test_docs_cover_readme_and_every_docs_page() -> None:
    names = {doc.relative_to(ROOT).as_posix() for doc in DOCS}
    assert {"README.md", "docs/sidecars.md", "docs/architecture.md"} <= names


def test_readme_is_a_front_door() -> None:
    lines = (ROOT / "README.md").read_text().splitlines()
    assert len(lines) <= 300
    top = "\n".join(lines[:40])
    assert "make run " in top and "make test " in top


def prose(text: str) -> str:
    """The text outside fenced code blocks."""
    return re.sub(r"^```.*?^```", "", text, flags=re.S | re.M)


def anchors(doc: Path) -> set[str]:
    """GitHub's heading ids: lower case, punctuation dropped, spaces as hyphens."""
    found: set[str] = set()
    for title in re.findall(r"^#{1,6} (.+)$", prose(doc.read_text()), re.M):
        slug = re.sub(r"[^\w\- ]", "", title.strip().lower()).replace(" ", "-")
        n, unique = 0, slug
        while unique in found:
            n += 1
            unique = f"{slug}-{n}"
        found.add(unique)
    return found


def links() -> list[tuple[str, Path, str]]:
    found = []
    for doc in DOCS:
        for target in re.findall(r"\]\(([^)\s]+)\)", prose(doc.read_text())):
            if not re.match(r"[a-z]+:", target):
                found.append((f"{doc.relative_to(ROOT).as_posix()} -> {target}", doc, target))
    return found


@pytest.mark.parametrize(("where", "doc", "target"), links(), ids=[w for w, _, _ in links()])
def test_relative_links_reach_a_file_and_heading(where: str, doc: Path, target: str) -> None:
    path, _, anchor = target.partition("#")
    file = (doc.parent / path).resolve() if path else doc
    assert file.exists(), where
    assert ROOT.resolve() in file.parents or file == ROOT.resolve(), where
    if anchor:
        assert file.suffix == ".md" and anchor in anchors(file), where


def _first_paragraph(doc: str | None) -> str:
    text = " ".join((doc or "").split("\n\n")[0].split())
    return (text[:1].lower() + text[1:]).removesuffix(".")


def test_the_architecture_table_is_the_packages_own_docstrings() -> None:
    """docs/architecture.md's package table cannot drift: each row is its package's docstring,
    and every package of imds_proxy has a row."""
    import importlib
    import pkgutil

    import imds_proxy

    text = (ROOT / "docs" / "architecture.md").read_text()
    rows = dict(re.findall(r"^\| `(imds_proxy\.[a-z_]+)` \| (.+?) \|$", text, re.M))
    packages = {f"imds_proxy.{m.name}" for m in pkgutil.iter_modules(imds_proxy.__path__) if m.ispkg}
    assert set(rows) == packages
    for name, described in rows.items():
        assert _first_paragraph(importlib.import_module(name).__doc__) == _first_paragraph(described), name
