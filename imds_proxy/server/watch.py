"""The route a request is reported under (the request metrics), named from a short fixed list so
labels stay few."""

from __future__ import annotations

from imds_proxy.config.container import PATH
from imds_proxy.engine.tokens import TOKEN_PATH
from imds_proxy.server.gates import normalize

_CREDENTIALS = "/latest/meta-data/iam/security-credentials"


def route_of(path: str) -> str:
    """token, credentials, container, metadata or other: what the request was for."""
    path = normalize(path)
    if path == TOKEN_PATH:
        return "token"
    if path.startswith(_CREDENTIALS):  # also -extended
        return "credentials"
    if path.startswith(PATH):
        return "container"
    if path == "/" or path.startswith("/latest"):
        return "metadata"
    return "other"
