"""Typed reads of one raw configuration value (TOML, environment or option), each failure a
ConfigError naming the key. `where` prefixes the key in errors (`roles.dev.`)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from imds_proxy.errors import ConfigError


def whole_number(
    values: Mapping[str, Any], key: str, default: int, lo: int, hi: int, unit: str, where: str = ""
) -> int:
    raw = values.get(key, default)
    if isinstance(raw, bool):
        raw = str(raw)
    try:
        value = int(raw)
    except (TypeError, ValueError):
        raise ConfigError(
            where + key, f"{raw!r} is not a whole number", f"give {unit} from {lo} to {hi}"
        ) from None
    if not lo <= value <= hi:
        raise ConfigError(where + key, f"{value} is out of range", f"give {unit} from {lo} to {hi}")
    return value


def text(values: Mapping[str, Any], key: str, where: str = "") -> str | None:
    """A string value, stripped; None when unset or blank."""
    raw = values.get(key)
    if raw is None:
        return None
    if not isinstance(raw, str):
        raise ConfigError(where + key, f"{raw!r} is not a string", "quote the value")
    return raw.strip() or None


def choice(values: Mapping[str, Any], key: str, default: str, choices: tuple[str, ...]) -> str:
    """One of `choices`, case-insensitive; TOML booleans read as enabled/disabled."""
    raw = values.get(key, default)
    value = str(raw).lower() if not isinstance(raw, bool) else {True: "enabled", False: "disabled"}[raw]
    if value not in choices:
        raise ConfigError(key, f"{raw!r} is not allowed", f"use one of: {', '.join(choices)}")
    return value
