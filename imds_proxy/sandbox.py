"""The embedded local AWS (moto's server, in-process on loopback) and the sandbox role.

Imported lazily by cli only. Like a lab bench it talks to its local AWS with boto3 to
create what the scenario needs; the daemon itself still reaches STS only through `sts`.
"""

from __future__ import annotations

import json
import logging
from typing import Any

import boto3
import botocore.session

from imds_proxy.errors import SandboxUnavailable

log = logging.getLogger("imds_proxy.sandbox")

SANDBOX_ACCOUNT = "123456789012"  # moto's default account
DEFAULT_ROLE = "imds-proxy-sandbox"
DEFAULT_ROLE_ARN = f"arn:aws:iam::{SANDBOX_ACCOUNT}:role/{DEFAULT_ROLE}"
REGION = "us-east-1"
#: moto accepts any key pair while IAM is not enforced; these are AWS's documented examples.
_SETUP_KEY = ("AKIAIOSFODNN7EXAMPLE", "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY")

#: An instance profile role: trusted by the EC2 service, as on a real instance.
EC2_TRUST = {
    "Version": "2012-10-17",
    "Statement": [
        {
            "Effect": "Allow",
            "Principal": {
                "Service": "ec2.amazonaws.com",
                "AWS": f"arn:aws:iam::{SANDBOX_ACCOUNT}:root",
            },
            "Action": "sts:AssumeRole",
        }
    ],
}


_NO_PROFILE = {"profile": (None, None, None, None)}


class LocalAws:
    """moto's server on a loopback port, running in a thread of this process."""

    def __init__(self, host: str = "127.0.0.1", port: int = 0) -> None:
        try:
            from moto.server import ThreadedMotoServer
        except ImportError:
            raise SandboxUnavailable(
                "the sandbox needs moto: pip install 'imds-proxy[sandbox]' (make run does it)"
            ) from None
        self._server = ThreadedMotoServer(ip_address=host, port=port, verbose=False)
        self._host = host
        self._port = port

    def start(self) -> LocalAws:
        try:
            self._server.start()
        except OSError as e:
            raise SandboxUnavailable(
                f"cannot start the local AWS on {self._host}:{self._port}: {e.strerror}; "
                "pick another --aws-port"
            ) from None
        self._host, self._port = self._server.get_host_and_port()
        return self

    def stop(self) -> None:
        self._server.stop()

    @property
    def url(self) -> str:
        return f"http://{self._host}:{self._port}"

    def client(self, service: str) -> Any:
        """A boto3 client for the local AWS with the set-up key (never the environment's)."""
        # A session of its own, blind to AWS_PROFILE: a profile named there that does not
        # exist would otherwise stop the sandbox (boto3's default session reads it).
        session = boto3.Session(botocore_session=botocore.session.Session(session_vars=_NO_PROFILE))
        return session.client(  # type: ignore[call-overload]
            service,
            region_name=REGION,
            endpoint_url=self.url,
            aws_access_key_id=_SETUP_KEY[0],
            aws_secret_access_key=_SETUP_KEY[1],
        )


def create_default_role(aws: LocalAws, name: str = DEFAULT_ROLE) -> str:
    """The sandbox role: trusted by EC2, allowed to read S3. Returns its ARN."""
    iam = aws.client("iam")
    arn: str = iam.create_role(
        RoleName=name,
        AssumeRolePolicyDocument=json.dumps(EC2_TRUST),
        Description="imds-proxy sandbox instance role",
    )["Role"]["Arn"]
    iam.put_role_policy(
        RoleName=name,
        PolicyName="read-s3",
        PolicyDocument=json.dumps(
            {
                "Version": "2012-10-17",
                "Statement": [{"Effect": "Allow", "Action": ["s3:Get*", "s3:List*"], "Resource": "*"}],
            }
        ),
    )
    log.info("local AWS at %s: created role %s", aws.url, arn)
    return arn


def exports(imds_url: str, aws_url: str, region: str = REGION) -> str:
    """The shell lines that point SDKs at us and their AWS calls at the local AWS.
    Environment keys and profiles would win over IMDS in every SDK, so they are unset."""
    return "\n".join(
        [
            "unset AWS_ACCESS_KEY_ID AWS_SECRET_ACCESS_KEY AWS_SESSION_TOKEN AWS_PROFILE "
            "AWS_CONTAINER_CREDENTIALS_FULL_URI AWS_CONTAINER_CREDENTIALS_RELATIVE_URI",
            # Trailing slash: every SDK accepts it, and Debian 12's AWS CLI v2 needs it.
            f"export AWS_EC2_METADATA_SERVICE_ENDPOINT={imds_url}",
            f"export AWS_ENDPOINT_URL={aws_url}",
            # AWS_REGION for the JS, Go and Java SDKs; botocore and the CLI read the other.
            f"export AWS_REGION={region}",
            f"export AWS_DEFAULT_REGION={region}",
        ]
    )
