"""Instance identity (instance-id, region, AZ, identity document, iam/info) derived from config."""

from __future__ import annotations

import base64
import hashlib
from datetime import datetime
from typing import Any

from imds_proxy.config.identity import Identity
from imds_proxy.engine.credentials import wire_time

#: Shown as the identity document's `imageId`; any plausible AMI id works for clients.
IMAGE_ID = "ami-0123456789abcdef0"
PRIVATE_IP = "127.0.0.1"


def instance_profile_arn(identity: Identity) -> str:
    return f"arn:aws:iam::{identity.account_id}:instance-profile/{identity.instance_profile_name}"


def instance_profile_id(identity: Identity) -> str:
    """`AIPA` + 17 characters, stable for the same profile ARN (like AWS's unique ids)."""
    digest = hashlib.sha256(instance_profile_arn(identity).encode()).digest()
    return "AIPA" + base64.b32encode(digest).decode()[:17]


def iam_info(identity: Identity, now: datetime) -> dict[str, Any]:
    """`/latest/meta-data/iam/info` (Go v1's IAMInfo() needs Code == Success)."""
    return {
        "Code": "Success",
        "LastUpdated": wire_time(now),
        "InstanceProfileArn": instance_profile_arn(identity),
        "InstanceProfileId": instance_profile_id(identity),
    }


def identity_document(identity: Identity, started: datetime) -> dict[str, Any]:
    """`/latest/dynamic/instance-identity/document`, with EC2's field set; `pendingTime`
    is RFC 3339 because Go v1 parses it as a time."""
    return {
        "accountId": identity.account_id,
        "architecture": "x86_64",
        "availabilityZone": identity.availability_zone,
        "billingProducts": None,
        "devpayProductCodes": None,
        "marketplaceProductCodes": None,
        "imageId": IMAGE_ID,
        "instanceId": identity.instance_id,
        "instanceType": identity.instance_type,
        "kernelId": None,
        "pendingTime": wire_time(started),
        "privateIp": PRIVATE_IP,
        "ramdiskId": None,
        "region": identity.region,
        "version": "2017-09-30",
    }
