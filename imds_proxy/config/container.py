"""The container channel's settings: its path, the hosts SDKs accept in its URL, and its
authorization token (inline, or read from a token file that is generated if missing and never ends
in a newline)."""

from __future__ import annotations

import ipaddress
import os
import secrets
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from imds_proxy.config.listeners import Listener
from imds_proxy.config.values import text
from imds_proxy.errors import ConfigError

#: The container-credentials path on every listener: the listener's role here, any
#: configured role at PATH/<name>.
PATH = "/v1/credentials"

#: Besides loopback, the only hosts the SDKs accept in a plain-http FULL_URI: ECS's and EKS
#: Pod Identity's link-local addresses (protocol.md §5). Anything else needs https.
LINK_LOCAL_HOSTS = ("169.254.170.2", "169.254.170.23", "fd00:ec2::23")
#: Hosts that stand for "every address here": clients on this host reach them on loopback.
_WILDCARDS = {"0.0.0.0": "127.0.0.1", "::": "::1", "": "127.0.0.1", "localhost": "127.0.0.1"}


def new_token() -> str:
    """A fresh random token: 43 URL-safe characters (256 bits), a valid header value."""
    return secrets.token_urlsafe(32)


def client_host(listener: Listener) -> str:
    """The address a client on this host uses to reach the listener. Wildcards and
    `localhost` become 127.0.0.1 (or ::1): Debian 12's AWS CLI v2 and the JS SDK's
    fromContainerMetadata accept only 127.0.0.1 or localhost, and `localhost` may resolve
    to ::1 first, where we might not listen."""
    return _WILDCARDS.get(listener.host, listener.host)


def sdk_accepts(host: str) -> bool:
    """Whether every current SDK accepts this host in a plain-http container URL."""
    if host in LINK_LOCAL_HOSTS:
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def base_url(host: str, port: int) -> str:
    return f"http://[{host}]:{port}" if ":" in host else f"http://{host}:{port}"


def credentials_url(listener: Listener, role: str | None = None) -> str:
    """The FULL_URI for a client on this host: the listener's own role, or `role`."""
    url = base_url(client_host(listener), listener.port) + PATH
    return f"{url}/{role}" if role else url


def read_token_file(path: Path) -> str:
    """The token in `path`, refused (ConfigError) when SDKs would refuse to send it."""
    key = "container_token_file"
    try:
        token = path.read_text(encoding="ascii")
    except UnicodeDecodeError:
        raise ConfigError(key, f"{path} is not ASCII text", "write a token of printable ASCII") from None
    except OSError as e:
        raise ConfigError(
            key, f"cannot read {path} ({e.strerror})", "check the path and its permissions"
        ) from None
    if token.endswith(("\n", "\r")):
        raise ConfigError(
            key,
            f"{path} ends with a line break",
            "SDKs send the file as is and refuse CR/LF: rewrite it without one, "
            'e.g. printf %s "$TOKEN" > FILE, or delete it to have one generated',
        )
    if problem := container_token_problem(token):
        raise ConfigError(
            key, f"the token in {path} {problem}", "write a random value, e.g. openssl rand -hex 32"
        )
    return token


def write_token_file(path: Path, token: str) -> None:
    """Create `path` (owner-only, mode 0600) holding exactly the token: no trailing newline,
    as botocore, Go and JS send the file's bytes verbatim and refuse CR/LF. Never replaces
    an existing file."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w", encoding="ascii") as f:
        f.write(token)


def load_token(path: Path) -> str:
    """The token from `path`; if there is no such file, a new token written to it."""
    if not path.exists():
        try:
            write_token_file(path, new_token())
        except FileExistsError:
            pass  # another process created it meanwhile: use theirs
        except OSError as e:
            raise ConfigError(
                "container_token_file",
                f"{path} does not exist and cannot be created ({e.strerror})",
                "create its directory, or point container_token_file at a writable place",
            ) from None
    return read_token_file(path)



#: A container authorization token shorter than this is guessable.
MIN_CONTAINER_TOKEN = 16


@dataclass(frozen=True)
class ContainerSettings:
    """The container-credentials endpoint: on when a token or a token file is configured.
    The token itself never appears in repr() (nor, therefore, in logs or tracebacks)."""

    #: The token clients must send; None: the endpoint is off.
    token: str | None = field(default=None, repr=False)
    #: Where the token was read from (written to, generated, if the file did not exist).
    token_file: Path | None = None

    @property
    def enabled(self) -> bool:
        return self.token is not None


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
    """The endpoint's settings with its token in hand: inline, or read from its file (which is
    generated when it does not exist), so nothing downstream ever reads a file for it."""
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
    path = Path(file).expanduser() if file else None
    if path is not None:
        token = load_token(path)
    return ContainerSettings(token=token, token_file=path)
