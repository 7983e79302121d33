"""The admin's policy (a ConfigMap mounted as a file): which role each {namespace,
serviceAccount} gets, per-pod or per-ServiceAccount sessions, the cluster name for session tags."""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import yaml

from imds_proxy.config.roles import EXTERNAL_ID_RE, MAX_DURATION, MIN_DURATION, ROLE_ARN_RE
from imds_proxy.errors import ImdsProxyError

Sessions = Literal["per-pod", "per-service-account"]
_SESSIONS: tuple[Sessions, ...] = ("per-pod", "per-service-account")
#: Session tags we set ourselves (sessions.py): a binding may not override them.
RESERVED_TAG_PREFIX = "kubernetes-"


class PolicyError(ImdsProxyError):
    """The policy file cannot be used; the message names the entry and the fix."""


@dataclass(frozen=True)
class Binding:
    namespace: str
    service_account: str
    role_arn: str
    duration: int | None = None
    external_id: str | None = None
    #: Extra session tags, sorted by key.
    tags: tuple[tuple[str, str], ...] = ()


@dataclass(frozen=True)
class Policy:
    bindings: Mapping[tuple[str, str], Binding]
    sessions: Sessions = "per-pod"
    cluster_name: str | None = None
    #: sha256 of the file's bytes: a reload with the same digest changes nothing.
    digest: str = ""

    def binding(self, namespace: str, service_account: str) -> Binding | None:
        return self.bindings.get((namespace, service_account))


def _text(entry: Mapping[str, Any], key: str, where: str, *, required: bool = True) -> str | None:
    value = entry.get(key)
    if value is None and not required:
        return None
    if not isinstance(value, str) or not value:
        raise PolicyError(f"policy {where}: {key} must be a non-empty string")
    return value


def _binding(entry: Any, where: str) -> Binding:
    if not isinstance(entry, dict):
        raise PolicyError(f"policy {where}: write a mapping with namespace, serviceAccount and roleArn")
    unknown = set(entry) - {"namespace", "serviceAccount", "roleArn", "duration", "externalId", "tags"}
    if unknown:
        raise PolicyError(f"policy {where}: unknown keys {', '.join(sorted(unknown))}")
    namespace = _text(entry, "namespace", where)
    service_account = _text(entry, "serviceAccount", where)
    role_arn = _text(entry, "roleArn", where)
    assert namespace and service_account and role_arn
    if not ROLE_ARN_RE.fullmatch(role_arn):
        raise PolicyError(f"policy {where}: {role_arn!r} is not a role ARN (arn:aws:iam::ACCOUNT:role/NAME)")
    duration = entry.get("duration")
    if duration is not None and (
        isinstance(duration, bool)
        or not isinstance(duration, int)
        or not MIN_DURATION <= duration <= MAX_DURATION
    ):
        raise PolicyError(
            f"policy {where}: duration must be whole seconds from {MIN_DURATION} to {MAX_DURATION}"
        )
    external_id = _text(entry, "externalId", where, required=False)
    if external_id is not None and not EXTERNAL_ID_RE.fullmatch(external_id):
        raise PolicyError(f"policy {where}: externalId has characters or a length STS refuses")
    tags = entry.get("tags") or {}
    if not isinstance(tags, dict) or not all(
        isinstance(k, str) and isinstance(v, str) for k, v in tags.items()
    ):
        raise PolicyError(f"policy {where}: tags must map strings to strings")
    reserved = [k for k in tags if k.startswith(RESERVED_TAG_PREFIX)]
    if reserved:
        raise PolicyError(f"policy {where}: tag {reserved[0]!r} is set by the agent itself")
    return Binding(namespace, service_account, role_arn, duration, external_id, tuple(sorted(tags.items())))


def parse_policy(data: bytes, source: str = "the policy file") -> Policy:
    """The policy in `data` (YAML); PolicyError saying what to fix."""
    try:
        doc = yaml.safe_load(data.decode("utf-8")) or {}
    except (yaml.YAMLError, UnicodeDecodeError) as e:
        raise PolicyError(f"{source} is not YAML: {str(e).splitlines()[0]}") from None
    if not isinstance(doc, dict):
        raise PolicyError(f"{source}: write a mapping with a bindings list")
    unknown = set(doc) - {"bindings", "sessions", "clusterName"}
    if unknown:
        raise PolicyError(
            f"{source}: unknown keys {', '.join(sorted(unknown))} (bindings, sessions, clusterName)"
        )
    sessions = doc.get("sessions", "per-pod")
    if sessions not in _SESSIONS:
        raise PolicyError(f"{source}: sessions must be one of {', '.join(_SESSIONS)}, not {sessions!r}")
    cluster = doc.get("clusterName")
    if cluster is not None and (not isinstance(cluster, str) or not cluster):
        raise PolicyError(f"{source}: clusterName must be a non-empty string")
    entries = doc.get("bindings") or []
    if not isinstance(entries, list):
        raise PolicyError(f"{source}: bindings must be a list")
    bindings: dict[tuple[str, str], Binding] = {}
    for i, entry in enumerate(entries):
        binding = _binding(entry, f"bindings[{i}]")
        key = (binding.namespace, binding.service_account)
        if key in bindings:
            raise PolicyError(f"{source} bindings[{i}]: {key[0]}/{key[1]} is bound twice")
        bindings[key] = binding
    return Policy(bindings, sessions, cluster, hashlib.sha256(data).hexdigest())


def read_policy(path: Path) -> Policy:
    """The policy in the file at `path`; PolicyError when it cannot be read or used."""
    try:
        data = path.read_bytes()
    except OSError as e:
        raise PolicyError(
            f"cannot read the policy file {path} ({e.strerror}); mount the ConfigMap there"
        ) from None
    return parse_policy(data, str(path))
