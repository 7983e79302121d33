"""botocore-backed Sources: AssumeRole (profiles, chaining, MFA) and AssumeRoleWithWebIdentity
through STS, always off the event loop.

The daemon's STS clients (`profiles` reads ~/.aws/config with botocore; only the sandbox
imports boto3, to build its local AWS). Nothing below it (refresh, credentials, tokens,
metadata, config) imports boto3 or botocore, so their tests run without AWS; the import-linter
contracts in pyproject.toml keep it so. One concept a module:

  clients  the botocore STS clients (source credentials; other keys, same endpoint)
  source   AssumeRoleSource: one role's STS calls, chaining, MFA, web identity
  params   the AssumeRole / AssumeRoleWithWebIdentity parameters a RoleSpec sets
  errors   botocore failures and AWS error codes as our error types
  build    a source per configured role, sharing MFA sessions
"""

from imds_proxy.aws.sts.build import build_sources
from imds_proxy.aws.sts.clients import ClientFactory, KeyedClientFactory, client_like, default_client
from imds_proxy.aws.sts.errors import classify
from imds_proxy.aws.sts.params import assume_role_params, web_identity_params
from imds_proxy.aws.sts.source import CHAINED_MAX_DURATION, AssumeRoleSource

__all__ = [
    "CHAINED_MAX_DURATION",
    "AssumeRoleSource",
    "ClientFactory",
    "KeyedClientFactory",
    "assume_role_params",
    "build_sources",
    "classify",
    "client_like",
    "default_client",
    "web_identity_params",
]
