"""What in this shell's SDK credential chain wins over IMDS, or switches it off: environment
keys, a named profile, web identity, container URIs, AWS_EC2_METADATA_DISABLED, and a default
profile with keys or SSO. Each named with its variable or file; key ids only by their suffix."""

from __future__ import annotations

from collections.abc import Mapping

from imds_proxy.engine.credentials import key_suffix
from imds_proxy.runtime import shellenv

#: Every SDK tries these before IMDS (botocore: env, then assume-role/web-identity/SSO from the
#: profile, then the container provider, then IMDS); what each one does to us.
_VARIABLES = {
    "AWS_ACCESS_KEY_ID": "environment keys: every SDK uses them before IMDS",
    "AWS_SECRET_ACCESS_KEY": "an environment secret key: with AWS_ACCESS_KEY_ID it wins over IMDS",
    "AWS_SESSION_TOKEN": "an environment session token: it goes with environment keys, not ours",
    "AWS_PROFILE": "SDKs read that profile's credentials instead of IMDS",
    "AWS_DEFAULT_PROFILE": "the AWS CLI v1 reads that profile's credentials instead of IMDS",
    "AWS_WEB_IDENTITY_TOKEN_FILE": "SDKs assume AWS_ROLE_ARN with that token instead of asking IMDS",
    shellenv.FULL_URI: "SDKs ask that container endpoint, not IMDS",
    shellenv.RELATIVE_URI: "SDKs ask the ECS agent's endpoint (169.254.170.2), not IMDS",
}
_UNSET = "unset it (eval \"$(imds-proxy env)\" unsets them all)"


def _shown(name: str, value: str) -> str:
    if name == "AWS_ACCESS_KEY_ID":
        return f"{name} (key {key_suffix(value)})"
    if name in ("AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN"):
        return name  # a secret: never its value
    return f"{name}={value}"


def shadows(env: Mapping[str, str]) -> list[str]:
    """One line per thing that wins over IMDS in this environment (none: IMDS is asked)."""
    found = [
        f"{_shown(name, env[name])}: {why}; {_UNSET}" for name, why in _VARIABLES.items() if env.get(name)
    ]
    if env.get("AWS_EC2_METADATA_DISABLED", "").strip().lower() == "true":
        value = env["AWS_EC2_METADATA_DISABLED"]
        found.append(f"AWS_EC2_METADATA_DISABLED={value}: SDKs never ask IMDS; {_UNSET}")
    for path, setting in shellenv.shadowing_settings(env):
        found.append(
            f"{path}: the default profile sets {setting}, which SDKs use before IMDS; remove it, or point "
            "AWS_SHARED_CREDENTIALS_FILE/AWS_CONFIG_FILE elsewhere"
        )
    return found
