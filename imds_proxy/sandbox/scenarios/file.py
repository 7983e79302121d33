"""Scenario files: the built-in ones by name or one by path, their TOML validated into a Scenario
(a variant applied first), every failure one line naming the file, the key and the fix; the list
`sandbox --list-scenarios` prints. Pure: no moto and no boto3 here."""

from __future__ import annotations

import re
import tomllib
from importlib import resources
from pathlib import Path
from typing import Any

from imds_proxy.errors import ConfigError
from imds_proxy.sandbox.scenarios import DEFAULT_SCENARIO, sections
from imds_proxy.sandbox.scenarios.model import DEFAULT_ACCOUNT, DEFAULT_REGION, Scenario
from imds_proxy.sandbox.scenarios.values import Reader

_BUILTIN_DIR = "builtin"


def _builtin() -> resources.abc.Traversable:
    return resources.files("imds_proxy.sandbox.scenarios").joinpath(_BUILTIN_DIR)

_REGION_RE = re.compile(r"[a-z]{2}(-[a-z]+)+-\d+")
_TOP = (
    "description",
    "account",
    "region",
    "serve",
    "try",
    "policies",
    "users",
    "roles",
    "instance_profiles",
    "buckets",
    "calls",
    "variants",
)
#: Sections whose entries are named tables; a variant replaces keys inside their entries.
_NAMED = ("policies", "users", "roles", "instance_profiles", "buckets")


def builtin_names() -> list[str]:
    """The built-in scenarios, the default first."""
    names = sorted(
        p.name.removesuffix(".toml")
        for p in _builtin().iterdir()
        if p.name.endswith(".toml")
    )
    return sorted(names, key=lambda n: n != DEFAULT_SCENARIO)


def load(spec: str, variant: str | None = None) -> Scenario:
    """A built-in scenario by name, or a scenario file by path."""
    if "/" not in spec and not spec.endswith(".toml"):
        if spec not in builtin_names():
            raise ConfigError(
                "scenario",
                f"there is no built-in scenario {spec!r}",
                f"use one of: {', '.join(builtin_names())}, or the path of a .toml file",
            )
        text = _builtin().joinpath(f"{spec}.toml").read_text("utf-8")
        return parse(text, f"{spec}.toml (built in)", spec, variant)
    path = Path(spec)
    try:
        text = path.read_text("utf-8")
    except FileNotFoundError:
        raise ConfigError("scenario", f"{path} does not exist", "check the --scenario path") from None
    except (OSError, UnicodeDecodeError) as e:
        raise ConfigError("scenario", f"cannot read {path} ({e})", "check the file") from None
    return parse(text, str(path), path.stem, variant)


def catalogue() -> str:
    """`sandbox --list-scenarios`: each built-in scenario, its variants, what it shows."""
    lines = []
    for name in builtin_names():
        s = load(name)
        default = " (default)" if name == DEFAULT_SCENARIO else ""
        lines.append(f"{name}{default}\n    {s.description}")
        lines += [f"    --variant {v}: {d}" for v, d in s.variants.items()]
    return "\n".join(lines)


def _merge_variant(data: dict[str, Any], name: str, reader: Reader) -> tuple[dict[str, Any], set[str]]:
    """The scenario with variant `name` applied, and the keys the variant set. A variant replaces the
    keys it gives inside the entries it names (e.g. `[variants.X.roles.foo] trust = ...`)."""
    variants = reader.table(data.get("variants", {}), "variants")
    if name not in variants:
        known = ", ".join(variants) or "none"
        reader.fail("variants", f"there is no variant {name!r}", f"use one of: {known}")
    variant = reader.table(variants[name], f"variants.{name}")
    reader.known(variant, f"variants.{name}", ("description", "serve", "try", *_NAMED))
    merged = {k: v for k, v in data.items() if k != "variants"}
    touched: set[str] = set()
    for section, entries in variant.items():
        if section == "description":
            continue
        entries = reader.table(entries, f"variants.{name}.{section}")
        base = dict(reader.table(merged.get(section, {}), section))
        if section in _NAMED:
            for entry, values in entries.items():
                values = reader.table(values, f"variants.{name}.{section}.{entry}")
                base[entry] = {**reader.table(base.get(entry, {}), f"{section}.{entry}"), **values}
                touched.update(f"{section}.{entry}.{k}" for k in values)
        else:
            base.update(entries)
            touched.update(f"{section}.{k}" for k in entries)
        merged[section] = base
    return merged, touched


def parse(text: str, source: str, name: str, variant: str | None = None) -> Scenario:
    """Validate a scenario's TOML text. Raises ScenarioError naming `source`, the key and the fix."""
    r = Reader(source)
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as e:
        r.fail("(file)", f"is not valid TOML ({e})", "fix the syntax")
    r.known(data, "", _TOP)
    variants = sections.variants(r, data)
    if variant is not None:
        data, touched = _merge_variant(data, variant, r)

        def shown(key: str) -> str:  # a key the variant set is reported where the variant sets it
            hit = any(key == t or key.startswith((t + ".", t + "[")) for t in touched)
            return f"variants.{variant}.{key}" if hit else key

        r = Reader(source, shown)
    description = r.string(
        r.required(data, "", "description", 'add description = "what this scenario shows"'), "description"
    )
    r.default_account = r.account(data, "", DEFAULT_ACCOUNT)
    region = r.string(
        data.get("region", DEFAULT_REGION), "region", _REGION_RE, "an AWS region, e.g. us-east-1"
    )
    policies = sections.policies(r, data)
    users = sections.users(r, data, policies)
    roles = sections.roles(r, data, policies)
    tries = r.table(data.get("try", {}), "try")
    r.known(tries, "try", ("allowed", "denied"))
    return Scenario(
        name=name,
        source=source,
        description=description,
        region=region,
        **sections.serve(r, data, roles, users),
        policies=tuple(policies.values()),
        users=tuple(users.values()),
        roles=tuple(roles.values()),
        instance_profiles=tuple(sections.instance_profiles(r, data, roles)),
        buckets=tuple(sections.buckets(r, data)),
        calls=tuple(sections.calls(r, data)),
        try_allowed=r.strings(tries.get("allowed", []), "try.allowed"),
        try_denied=r.strings(tries.get("denied", []), "try.denied"),
        variant=variant,
        variants=variants,
    )
