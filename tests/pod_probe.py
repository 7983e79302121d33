"""Run inside the "pod" namespace: asks the agent as a pod would, one JSON line per case. Cases
(argv[1], JSON): {"sdk": "boto3"|"http", "url", "token_file", "source"?}."""

from __future__ import annotations

import http.client
import json
import os
import sys
from pathlib import Path
from urllib.parse import urlsplit


def over_http(case: dict[str, str]) -> dict[str, object]:
    """A plain GET with the token file's content as Authorization, from `source` if given."""
    url = urlsplit(case["url"])
    source = (case["source"], 0) if case.get("source") else None
    conn = http.client.HTTPConnection(url.hostname or "", url.port or 80, timeout=10, source_address=source)
    conn.request("GET", url.path, headers={"Authorization": Path(case["token_file"]).read_text()})
    response = conn.getresponse()
    doc = json.loads(response.read() or b"{}")
    return {"status": response.status, "code": doc.get("Code"), "message": doc.get("Message")}


def with_boto3(case: dict[str, str]) -> dict[str, object]:
    """What boto3's default chain finds, with only the container-credentials variables set."""
    import boto3

    for name in list(os.environ):
        if name.startswith("AWS_"):
            del os.environ[name]
    os.environ.update(
        AWS_CONFIG_FILE=os.devnull,
        AWS_SHARED_CREDENTIALS_FILE=os.devnull,
        AWS_EC2_METADATA_DISABLED="true",
        AWS_CONTAINER_CREDENTIALS_FULL_URI=case["url"],
        AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE=case["token_file"],
    )
    creds = boto3.Session(region_name="us-east-1").get_credentials()
    if creds is None:
        return {"error": "no credentials"}
    frozen = creds.get_frozen_credentials()
    return {
        "method": creds.method,
        "key": frozen.access_key,
        "secret": frozen.secret_key,
        "token": frozen.token,
    }


for case in json.loads(sys.argv[1]):
    try:
        result = with_boto3(case) if case["sdk"] == "boto3" else over_http(case)
    except Exception as e:
        result = {"error": f"{type(e).__name__}: {e}"}
    print(json.dumps(result), flush=True)
