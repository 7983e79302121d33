"""The container-credentials endpoint's settings: its authorization token, given inline or in a
file, and the checks that keep it guessable by no one and sendable by every SDK."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from imds_proxy.config_values import text
from imds_proxy.errors import ConfigError

#: A container authorization token shorter than this is guessable.
MIN_CONTAINER_TOKEN = 16


@dataclass(frozen=True)
class ContainerSettings:
    """The container-credentials endpoint: on when a token or a token file is configured.
    The token itself never appears in repr() (nor, therefore, in logs or tracebacks)."""

    token: str | None = field(default=None, repr=False)
    #: Where the token is read from (and written to, generated, if the file does not exist).
    token_file: Path | None = None

    @property
    def enabled(self) -> bool:
        return self.token is not None or self.token_file is not None


def container_token_problem(token: str) -> str | None:
    """Why a container authorization token is unusable, or None. It is sent verbatim as the
    Authorization header: botocore, Go and JS refuse CR/LF and none strips it (protocol.md
    §5). The reason never quotes the token."""
    if len(token) < MIN_CONTAINER_TOKEN:
        return f"is shorter than {MIN_CONTAINER_TOKEN} characters"
    if token != token.strip():
        return "starts or ends with whitespace or a line break, which SDKs send as is and refuse"
    if not all(" " <= c <= "~" for c in token):
        return "has characters other than printable ASCII (not a valid header value)"
    return None


def build_container(values: Mapping[str, Any]) -> ContainerSettings:
    token = values.get("container_token")
    if token is not None and not isinstance(token, str):
        raise ConfigError("container_token", "is not a string", "quote the value")
    token = token or None
    file = text(values, "container_token_file")
    if token is not None and file is not None:
        raise ConfigError(
            "container_token", "is set together with container_token_file", "give only one of them"
        )
    if token is not None and (problem := container_token_problem(token)):
        raise ConfigError("container_token", problem, "use a random value, e.g. `openssl rand -hex 32`")
    return ContainerSettings(token=token, token_file=Path(file).expanduser() if file else None)
