"""The node agent's settings, parsed once from its command line: where it listens, which node it
serves, the audience it reviews tokens for, the policy file, and the limits it applies."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from imds_proxy.config.listeners import Listener

#: The audience the workloads' projected tokens carry (deploy/kubernetes/workload): a token
#: minted for the API server or another service is never accepted here.
AUDIENCE = "imds-proxy"
#: The only plain-HTTP hosts besides loopback that the SDKs accept in
#: AWS_CONTAINER_CREDENTIALS_FULL_URI (protocol.md §5); EKS Pod Identity's addresses.
DEFAULT_LISTEN = ("169.254.170.23:80", "[fd00:ec2::23]:80")
PATH = "/v1/credentials"


@dataclass(frozen=True)
class RateLimit:
    """A token bucket per peer address: SDKs ask a few times an hour; a loop asking many times a
    second is a bug or an attack on the API server (each new token costs a TokenReview)."""

    per_second: float = 5.0
    burst: int = 20
    #: Peers remembered at once (least recently seen forgotten first).
    peers: int = 4096


@dataclass(frozen=True)
class AgentSettings:
    node_name: str
    policy_file: Path
    listeners: tuple[Listener, ...]
    #: The node's own addresses (status.hostIPs): processes on the node may ask too.
    node_ips: frozenset[str] = frozenset()
    audience: str = AUDIENCE
    #: A kubeconfig (outside a cluster, and in tests); None: the in-cluster service account.
    kubeconfig: Path | None = None
    region: str | None = None
    sts_endpoint_url: str | None = None
    rate: RateLimit = field(default_factory=RateLimit)
    #: How often the policy file (a mounted ConfigMap) is looked at for changes.
    policy_poll_seconds: float = 10.0
    #: Most TokenReview answers kept at once (each until its token expires).
    review_cache_size: int = 4096
