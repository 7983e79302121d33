"""What a shell or a child process needs to use us: the variables to set and to unset, and
how sh, fish and PowerShell write that."""

from __future__ import annotations

import configparser
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

Shell = Literal["sh", "fish", "powershell"]
SHELLS: tuple[Shell, ...] = ("sh", "fish", "powershell")

#: Credentials every SDK's chain tries before the container endpoint and IMDS: environment
#: keys first, then a named profile or a web identity (AWS_DEFAULT_PROFILE: AWS CLI v1).
CREDENTIAL_VARS = (
    "AWS_ACCESS_KEY_ID",
    "AWS_SECRET_ACCESS_KEY",
    "AWS_SESSION_TOKEN",
    "AWS_PROFILE",
    "AWS_DEFAULT_PROFILE",
    "AWS_WEB_IDENTITY_TOKEN_FILE",
)
FULL_URI = "AWS_CONTAINER_CREDENTIALS_FULL_URI"
#: Most SDKs prefer RELATIVE_URI over FULL_URI (botocore, JS, Java), so it must go.
RELATIVE_URI = "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI"
TOKEN = "AWS_CONTAINER_AUTHORIZATION_TOKEN"
TOKEN_FILE = "AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE"
IMDS_ENDPOINT = "AWS_EC2_METADATA_SERVICE_ENDPOINT"


@dataclass(frozen=True)
class EnvChange:
    """Variables to set and to unset, in order."""

    set: tuple[tuple[str, str], ...]
    unset: tuple[str, ...]

    def apply(self, env: Mapping[str, str]) -> dict[str, str]:
        out = {k: v for k, v in env.items() if k not in self.unset}
        out.update(self.set)
        return out


def imds_change(imds_url: str) -> EnvChange:
    """Use our IMDS endpoint. Container URIs go too: every chain tries them before IMDS,
    and AWS_EC2_METADATA_DISABLED would switch IMDS off."""
    return EnvChange(
        set=((IMDS_ENDPOINT, imds_url),),
        unset=(*CREDENTIAL_VARS, FULL_URI, RELATIVE_URI, TOKEN, TOKEN_FILE, "AWS_EC2_METADATA_DISABLED"),
    )


def container_change(
    url: str, *, token: str | None = None, token_file: str | None = None, imds_url: str | None = None
) -> EnvChange:
    """Use our container endpoint, with the token itself or the file holding it. The other
    token variable is unset: botocore, JS and Go prefer the file, Java the plain token."""
    if (token is None) == (token_file is None):
        raise ValueError("give exactly one of token and token_file")
    pairs: list[tuple[str, str]] = [(FULL_URI, url)]
    pairs.append((TOKEN, token) if token is not None else (TOKEN_FILE, str(token_file)))
    if imds_url is not None:
        pairs.append((IMDS_ENDPOINT, imds_url))
    other = TOKEN_FILE if token is not None else TOKEN
    return EnvChange(set=tuple(pairs), unset=(*CREDENTIAL_VARS, RELATIVE_URI, other))


def _sh_quote(value: str) -> str:
    return "'" + value.replace("'", "'\\''") + "'"


def _fish_quote(value: str) -> str:
    return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"


def _ps_quote(value: str) -> str:
    return "'" + value.replace("'", "''") + "'"


def render(change: EnvChange, shell: Shell, comment: str = "") -> str:
    """The lines that make `change` in `shell` (for eval, `| source`, `| Invoke-Expression`)."""
    lines = [f"# {comment}"] if comment else []
    if shell == "sh":
        lines.append("unset " + " ".join(change.unset))
        lines += [f"export {k}={_sh_quote(v)}" for k, v in change.set]
    elif shell == "fish":
        lines += [f"set -q {k}; and set -e {k}" for k in change.unset]
        lines += [f"set -gx {k} {_fish_quote(v)}" for k, v in change.set]
    else:
        lines += [f"Remove-Item Env:{k} -ErrorAction SilentlyContinue" for k in change.unset]
        lines += [f"$Env:{k} = {_ps_quote(v)}" for k, v in change.set]
    return "\n".join(lines)


#: Settings of a `[default]` profile that give SDKs credentials before they look at the
#: environment's container URI or IMDS.
_CREDENTIALS_KEYS = ("aws_access_key_id",)
_CONFIG_KEYS = (
    "aws_access_key_id",
    "role_arn",
    "credential_process",
    "sso_session",
    "sso_start_url",
    "web_identity_token_file",
    "login_session",
)


def _profile_keys(path: Path, sections: tuple[str, ...], keys: tuple[str, ...]) -> list[str]:
    parser = configparser.RawConfigParser()
    try:
        parser.read(path, encoding="utf-8")
    except (configparser.Error, OSError, UnicodeDecodeError):
        return []
    return [k for s in sections if parser.has_section(s) for k in keys if parser.has_option(s, k)]


def shadowing_settings(env: Mapping[str, str]) -> list[tuple[str, str]]:
    """(file, setting) for each setting of a default profile that gives SDKs credentials before
    the container endpoint or IMDS; unsetting variables cannot change that."""
    home = Path(env.get("HOME") or Path.home())
    credentials = Path(env.get("AWS_SHARED_CREDENTIALS_FILE") or home / ".aws" / "credentials")
    config = Path(env.get("AWS_CONFIG_FILE") or home / ".aws" / "config")
    found = [(str(credentials), k) for k in _profile_keys(credentials, ("default",), _CREDENTIALS_KEYS)]
    found += [(str(config), k) for k in _profile_keys(config, ("default", "profile default"), _CONFIG_KEYS)]
    return found


def shadowing_files(env: Mapping[str, str]) -> list[str]:
    """AWS config files whose default profile has credentials (shadowing_settings' files)."""
    return list(dict.fromkeys(path for path, _ in shadowing_settings(env)))
