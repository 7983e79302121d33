"""The container channel outside HTTP: its path, the hosts SDKs accept in its URL, and its
authorization token (generated, or read from a token file that never ends in a newline)."""

from __future__ import annotations

import dataclasses
import ipaddress
import os
import secrets
from pathlib import Path

from imds_proxy.config import Config
from imds_proxy.container_settings import container_token_problem
from imds_proxy.errors import ConfigError
from imds_proxy.listeners import Listener

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


def resolve(config: Config) -> Config:
    """The config with the container token loaded (from its file, generated if needed).
    The process shell calls this once at start-up; handlers only ever see the token."""
    settings = config.container
    if settings.token is not None or settings.token_file is None:
        return config
    token = load_token(settings.token_file)
    return dataclasses.replace(config, container=dataclasses.replace(settings, token=token))
