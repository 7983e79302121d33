"""A role's AssumeRole parameters beyond its ARN, validated against STS's limits (protocol.md §6):
session-name templates, session policies, tags, source identity, the source of credentials, MFA."""

from __future__ import annotations

import getpass
import json
import re
import shlex
import socket
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from imds_proxy.config.values import text as _text
from imds_proxy.errors import ConfigError

SOURCE_IDENTITY_RE = re.compile(r"[\w+=,.@-]{2,64}", re.ASCII)
MFA_SERIAL_RE = re.compile(r"[\w+=/:,.@-]{9,256}", re.ASCII)
POLICY_ARN_RE = re.compile(r"arn:aws[\w-]*:iam::(\d{12}|aws):policy/[\w+=,.@/-]{1,512}", re.ASCII)
# IAM's tag pattern is [\p{L}\p{Z}\p{N}_.:/=+\-@]; Python's \w and \s are the closest match.
TAG_KEY_RE = re.compile(r"[\w\s.:/=+@-]{1,128}")
TAG_VALUE_RE = re.compile(r"[\w\s.:/=+@-]{0,256}")
MAX_POLICY_CHARS, MAX_POLICY_ARNS, MAX_TAGS = 2048, 10, 50
#: GetSessionToken lasts 15 min to 36 h; AWS's default is 12 h.
MIN_MFA_DURATION, MAX_MFA_DURATION, DEFAULT_MFA_DURATION = 900, 129600, 43200
#: What botocore accepts as a profile's credential_source.
CREDENTIAL_SOURCES = ("Environment", "Ec2InstanceMetadata", "EcsContainer")
#: The keys that say where a role's source credentials come from; at most one per role.
SOURCE_KEYS = ("source_profile", "credential_source", "source_role", "web_identity_token_file")
#: AssumeRoleWithWebIdentity takes none of these: the token's claims play their part.
_NOT_WITH_WEB_IDENTITY = ("external_id", "tags", "transitive_tag_keys", "source_identity", "mfa_serial")


def layer(base: Mapping[str, Any], over: Mapping[str, Any]) -> dict[str, Any]:
    """`over` wins key by key, except that the source keys go as a group: a layer that names
    a source replaces the lower layer's source rather than conflicting with it."""
    merged = {**base, **{k: v for k, v in over.items() if v is not None}}
    if any(over.get(k) is not None for k in SOURCE_KEYS):
        for key in SOURCE_KEYS:
            if over.get(key) is None:
                merged.pop(key, None)
    return merged


def _clean(value: str) -> str:
    return re.sub(r"[^\w+=,.@-]", "-", value, flags=re.ASCII)


def current_user() -> str:
    try:
        return getpass.getuser()
    except (OSError, KeyError):  # no login name and no passwd entry (some containers)
        return "user"


def expand_session_name(template: str, user: str | None = None, host: str | None = None) -> str:
    """`{user}` and `{host}` (short host name) filled in, cleaned to STS's RoleSessionName
    pattern and cut to 64 characters. Raises ValueError naming an unknown placeholder."""
    if "{" not in template and "}" not in template:
        return template
    values = {
        "user": _clean(user if user is not None else current_user()),
        "host": _clean((host if host is not None else socket.gethostname()).split(".")[0]),
    }
    try:
        name = template.format_map(values)
    except KeyError as e:
        raise ValueError(f"unknown placeholder {{{e.args[0]}}}") from None
    except (ValueError, IndexError):
        raise ValueError("unbalanced braces") from None
    return name[:64].rstrip("-")


def _words(values: Mapping[str, Any], key: str, where: str) -> list[str]:
    """A list key: a TOML array, repeated options, or one comma-separated string."""
    raw = values.get(key)
    if raw is None:
        return []
    if isinstance(raw, str):
        raw = raw.split(",")
    if not isinstance(raw, list | tuple) or not all(isinstance(v, str) for v in raw):
        raise ConfigError(where + key, "must be a list of strings", f'write {key} = ["...", "..."]')
    return [v.strip() for v in raw if v.strip()]


def _policy(values: Mapping[str, Any], where: str) -> str | None:
    inline, file = values.get("policy"), _text(values, "policy_file", where)
    if inline is not None and file is not None:
        raise ConfigError(where + "policy_file", "is given with policy", "give the session policy once")
    if file is not None:
        try:
            inline = Path(file).expanduser().read_text()
        except OSError as e:
            raise ConfigError(
                where + "policy_file", f"cannot read {file} ({e.strerror})", "check the path"
            ) from None
    if inline is None:
        return None
    key = where + ("policy_file" if file else "policy")
    if isinstance(inline, str):
        try:
            doc = json.loads(inline)
        except ValueError as e:
            raise ConfigError(key, f"is not valid JSON ({e})", "write an IAM policy document") from None
    else:
        doc = inline  # a TOML table
    if not isinstance(doc, dict):
        raise ConfigError(key, "is not a JSON object", 'write {"Version": "2012-10-17", "Statement": [...]}')
    text = json.dumps(doc, separators=(",", ":"), ensure_ascii=False)
    if len(text) > MAX_POLICY_CHARS:
        raise ConfigError(
            key,
            f"is {len(text)} characters without spaces; STS allows {MAX_POLICY_CHARS}",
            "shorten it or move statements into a managed policy (policy_arns)",
        )
    if any(not (c in "\t\n\r" or 0x20 <= ord(c) <= 0xFF) for c in text):
        raise ConfigError(key, "has characters STS refuses", "use characters up to U+00FF only")
    return text


def _tags(values: Mapping[str, Any], where: str) -> tuple[tuple[str, str], ...]:
    raw = values.get("tags")
    if raw is None:
        return ()
    fix = 'write tags = { team = "x" } (or --tag KEY=VALUE)'
    pairs: list[tuple[str, str]] = []
    if isinstance(raw, Mapping):
        pairs = [(str(k), v) for k, v in raw.items()]
    else:
        for item in _words(values, "tags", where):
            key, sep, value = item.partition("=")
            if not sep:
                raise ConfigError(where + "tags", f"{item!r} is not KEY=VALUE", fix)
            pairs.append((key.strip(), value.strip()))
    seen: set[str] = set()
    for key, value in pairs:
        if not isinstance(value, str):
            raise ConfigError(where + "tags", f"the value of {key!r} is not a string", fix)
        if not TAG_KEY_RE.fullmatch(key) or not TAG_VALUE_RE.fullmatch(value):
            raise ConfigError(
                where + "tags",
                f"tag {key!r} does not fit STS's limits",
                "keys take 1-128 and values 0-256 letters, digits, spaces and _.:/=+-@",
            )
        if key.lower() in seen:  # STS compares tag keys case-insensitively
            raise ConfigError(where + "tags", f"tag {key!r} is given twice", "give each key once")
        seen.add(key.lower())
    if len(pairs) > MAX_TAGS:
        raise ConfigError(where + "tags", f"{len(pairs)} tags", f"STS takes at most {MAX_TAGS}")
    return tuple(sorted(pairs, key=lambda kv: kv[0].lower()))


def _int_in(values: Mapping[str, Any], key: str, default: int, lo: int, hi: int, where: str) -> int:
    raw = values.get(key, default)
    try:
        value = int(raw) if not isinstance(raw, bool) else None
    except (TypeError, ValueError):
        value = None
    if value is None:
        raise ConfigError(where + key, f"{raw!r} is not a whole number", f"give seconds from {lo} to {hi}")
    if not lo <= value <= hi:
        raise ConfigError(where + key, f"{value} is out of range", f"give seconds from {lo} to {hi}")
    return value


def parse(values: Mapping[str, Any], where: str = "") -> dict[str, Any]:
    """The extra RoleSpec fields of one role, validated. `where` prefixes key names in errors."""

    def err(key: str, problem: str, fix: str) -> ConfigError:
        return ConfigError(where + key, problem, fix)

    sources = [k for k in SOURCE_KEYS if values.get(k) is not None]
    if len(sources) > 1:
        raise err(sources[1], f"is given with {sources[0]}", "give one source of credentials per role")
    credential_source = _text(values, "credential_source", where)
    if credential_source is not None and credential_source not in CREDENTIAL_SOURCES:
        raise err(
            "credential_source",
            f"{credential_source!r} is not allowed",
            "use one of: Environment, Ec2InstanceMetadata, EcsContainer",
        )
    web_identity = _text(values, "web_identity_token_file", where)
    if web_identity is not None:
        clash = [k for k in _NOT_WITH_WEB_IDENTITY if values.get(k)]
        if clash:
            raise err(
                clash[0],
                "does not apply to web identity",
                "AssumeRoleWithWebIdentity takes no ExternalId, tags, source identity or MFA: remove it",
            )
        web_identity = str(Path(web_identity).expanduser())

    policy_arns = tuple(dict.fromkeys(_words(values, "policy_arns", where)))
    for arn in policy_arns:
        if not POLICY_ARN_RE.fullmatch(arn):
            raise err(
                "policy_arns",
                f"{arn!r} is not a managed policy ARN",
                "write arn:aws:iam::123456789012:policy/NAME",
            )
    if len(policy_arns) > MAX_POLICY_ARNS:
        raise err("policy_arns", f"{len(policy_arns)} policies", f"STS takes at most {MAX_POLICY_ARNS}")

    tags = _tags(values, where)
    tag_keys = {k.lower() for k, _ in tags}
    transitive = tuple(dict.fromkeys(_words(values, "transitive_tag_keys", where)))
    for key in transitive:
        if key.lower() not in tag_keys:
            raise err("transitive_tag_keys", f"{key!r} is not one of the tags", "list keys set in tags")

    source_identity = _text(values, "source_identity", where)
    if source_identity is not None and (
        not SOURCE_IDENTITY_RE.fullmatch(source_identity) or source_identity.lower().startswith("aws:")
    ):
        raise err(
            "source_identity",
            f"{source_identity!r} does not match STS's pattern",
            "use 2 to 64 characters from letters, digits and +=,.@-_",
        )

    mfa_serial = _text(values, "mfa_serial", where)
    if mfa_serial is not None and not MFA_SERIAL_RE.fullmatch(mfa_serial):
        raise err("mfa_serial", f"{mfa_serial!r} is not an MFA device", "write arn:aws:iam::ACCOUNT:mfa/NAME")
    mfa_process = _text(values, "mfa_process", where)
    if mfa_process is not None:
        if mfa_serial is None:
            raise err("mfa_process", "is given without mfa_serial", "set mfa_serial to the MFA device ARN")
        try:
            ok = bool(shlex.split(mfa_process))
        except ValueError:
            ok = False
        if not ok:
            raise err("mfa_process", "is not a command", 'write e.g. mfa_process = "pass otp aws"')

    return {
        "profile": _text(values, "profile", where),
        "credential_source": credential_source,
        "source_role": _text(values, "source_role", where),
        "web_identity_token_file": web_identity,
        "policy": _policy(values, where),
        "policy_arns": policy_arns,
        "tags": tags,
        "transitive_tag_keys": transitive,
        "source_identity": source_identity,
        "mfa_serial": mfa_serial,
        "mfa_process": mfa_process,
        "mfa_duration": _int_in(
            values, "mfa_duration", DEFAULT_MFA_DURATION, MIN_MFA_DURATION, MAX_MFA_DURATION, where
        ),
    }


def check_source_roles(source_roles: Mapping[str, str | None]) -> None:
    """Every `source_role` names another configured role, and no chain loops."""
    for name, source in source_roles.items():
        if source is None:
            continue
        if source not in source_roles:
            raise ConfigError(
                f"roles.{name}.source_role",
                f"{source!r} is not a configured role",
                f"use one of: {', '.join(n for n in source_roles if n != name)}",
            )
        seen: list[str] = [name]
        current: str | None = source
        while current is not None:
            if current in seen:
                raise ConfigError(
                    f"roles.{name}.source_role",
                    f"loops: {' -> '.join([*seen, current])}",
                    "end the chain at a role with its own source",
                )
            seen.append(current)
            current = source_roles.get(current)
