"""The options the sub-commands share, each the config key it sets: option tables and the one
function that adds a table to a parser."""

from __future__ import annotations

import argparse

from imds_proxy import config

#: CLI option → config key, for options shared by serve and sandbox.
COMMON = {
    "--listen": ("listen", "HOST:PORT to serve IMDS on; repeatable (default 127.0.0.1:8169)"),
    "--role-session-name": ("role_session_name", "RoleSessionName (default imds-proxy-<host>)"),
    "--duration": ("duration", "session duration in seconds, 900-43200 (default 3600)"),
    "--refresh-ahead": (
        "refresh_ahead",
        "served credentials keep at least this many seconds (default 1800, at most half the duration)",
    ),
    "--imdsv1": ("imdsv1", "enabled|disabled: serve GETs without a token (default disabled)"),
    "--instance-id": ("instance_id", "instance id to report (default derived from host and role)"),
    "--availability-zone": ("availability_zone", "AZ to report: the region plus one letter"),
    "--instance-type": ("instance_type", "instance type to report (default t3.micro)"),
    "--allow-client": (
        "allow_clients",
        "NETWORK that may ask besides this host's own addresses (e.g. a bridge's); repeatable",
    ),
    "--hop-limit": ("hop_limit", "IP TTL / hop limit of token replies, 1-64 (default 1, as EC2)"),
    "--log-format": ("log_format", "text|json (default text)"),
    "--log-level": ("log_level", "debug|info|warning|error (default info)"),
}
SERVE = {
    "--role-arn": ("role_arn", "the role to assume and serve"),
    "--external-id": ("external_id", "ExternalId for AssumeRole"),
    "--region": ("region", "STS region (regional endpoint) and the region IMDS reports"),
    "--source-profile": (
        "source_profile",
        "~/.aws/config profile our own credentials for STS come from (default: boto3's chain)",
    ),
    "--sts-endpoint-url": ("sts_endpoint_url", "STS endpoint URL (e.g. a VPC endpoint)"),
}
#: The admin endpoint (serve and sandbox).
ADMIN = {
    "--admin-listen": (
        "admin_listen",
        "HOST:PORT for /healthz, /readyz and /metrics, or off (default 127.0.0.1:9169; never a "
        "credential listener's address)",
    ),
}
#: The container channel. The token itself has no option: command lines are visible to
#: every user (ps); it comes from the config file, IMDS_PROXYCONTAINER_TOKEN or a file.
CONTAINER = {
    "--container-token-file": (
        "container_token_file",
        "serve container credentials at /v1/credentials[/ROLE], authorized by the token in this "
        "file (generated if the file does not exist)",
    ),
    "--client": (
        "clients",
        "NETWORK=ROLE: clients from NETWORK get only ROLE; repeatable (needs the container endpoint)",
    ),
}
#: Roles from ~/.aws/config, the full AssumeRole surface, web identity and MFA.
ROLE_OPTIONS = {
    "--profile": ("profile", "take the role and its source from this ~/.aws/config profile"),
    "--credential-source": ("credential_source", "Environment|Ec2InstanceMetadata|EcsContainer"),
    "--web-identity-token-file": (
        "web_identity_token_file",
        "assume the role with this OIDC token (re-read at every refresh)",
    ),
    "--policy": ("policy", "session policy (JSON)"),
    "--policy-file": ("policy_file", "file holding the session policy"),
    "--policy-arn": ("policy_arns", "managed session policy ARN; repeatable"),
    "--tag": ("tags", "session tag KEY=VALUE; repeatable"),
    "--transitive-tag-key": ("transitive_tag_keys", "tag key that survives role chaining; repeatable"),
    "--source-identity": ("source_identity", "SourceIdentity for AssumeRole"),
    "--mfa-serial": ("mfa_serial", "MFA device ARN; codes come from `imds-proxy mfa` or --mfa-process"),
    "--mfa-process": ("mfa_process", "command that prints an MFA code (e.g. a password manager)"),
    "--mfa-duration": ("mfa_duration", "MFA session length in seconds, 900-129600 (default 43200)"),
    "--mfa-warn-ahead": ("mfa_warn_ahead", "warn this many seconds before an MFA session ends (1800)"),
    "--notify-command": ("notify_command", "command run with a message when an MFA session is ending"),
    "--control-socket": ("control_socket", "control socket path (default $XDG_RUNTIME_DIR/imds-proxy/)"),
}


def add(parser: argparse.ArgumentParser, options: dict[str, tuple[str, str]]) -> None:
    for flag, (key, help_text) in options.items():
        action = "append" if key in config.LIST_KEYS else "store"
        parser.add_argument(flag, dest=key, action=action, help=help_text)
