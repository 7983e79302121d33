"""`imds-proxy node-agent`: the Kubernetes DaemonSet mode (docs/kubernetes.md). Parses its flags
into AgentSettings and runs the agent until SIGTERM."""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
from pathlib import Path

from imds_proxy.cli.common import EXIT_FAILURE
from imds_proxy.config.admin import build_admin
from imds_proxy.config.listeners import parse_listener
from imds_proxy.errors import ConfigError

DEFAULT_POLICY = "/etc/imds-proxy/policy.yaml"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    from imds_proxy.kubernetes.settings import AUDIENCE, DEFAULT_LISTEN

    add = parser.add_argument
    add("--node-name", default=os.environ.get("NODE_NAME"), help="this node (default $NODE_NAME)")
    add(
        "--policy-file",
        default=DEFAULT_POLICY,
        help=f"the mounted policy (default {DEFAULT_POLICY})",
    )
    add("--listen", action="append", help=f"HOST:PORT; repeatable (default {' and '.join(DEFAULT_LISTEN)})")
    add("--node-ip", action="append", default=[], help="an address of this node (status.hostIPs); repeatable")
    add("--admin-listen", help="HOST:PORT for /healthz /readyz /metrics, or off (default 127.0.0.1:9169)")
    add("--kubeconfig", type=Path, help="kubeconfig to use instead of the in-cluster service account")
    add("--audience", default=AUDIENCE, help=f"the projected tokens' audience (default {AUDIENCE})")
    add("--region", help="STS region (regional endpoint)")
    add("--sts-endpoint-url", help="STS endpoint URL (e.g. a VPC endpoint)")
    add("--rate", type=float, default=5.0, help="requests per second per peer, steady (default 5)")
    add("--burst", type=int, default=20, help="requests per peer in a burst (default 20)")
    add("--log-format", choices=("text", "json"), default="text")
    add("--log-level", choices=("debug", "info", "warning", "error"), default="info")


def cmd_node_agent(args: argparse.Namespace) -> int:
    from imds_proxy.aws.sts import default_client
    from imds_proxy.kubernetes.agent import run_agent
    from imds_proxy.kubernetes.api import ApiError, KubeApi
    from imds_proxy.kubernetes.policy import PolicyError, read_policy
    from imds_proxy.kubernetes.settings import DEFAULT_LISTEN, AgentSettings, RateLimit
    from imds_proxy.runtime import logs

    if not args.node_name:
        raise ConfigError("node_name", "is not set", "pass --node-name or set NODE_NAME")
    if args.rate <= 0 or args.burst < 1:
        raise ConfigError("rate", "must be positive", "e.g. --rate 5 --burst 20")
    listeners = tuple(dict.fromkeys(parse_listener(v) for v in args.listen or DEFAULT_LISTEN))
    if any(lst.role for lst in listeners):
        raise ConfigError("listen", "takes no =ROLE here", "the role comes from the policy")
    values = {"admin_listen": args.admin_listen} if args.admin_listen else {}
    admin = build_admin(values, listeners)
    node_ips = frozenset(ip for v in args.node_ip for ip in v.split(",") if ip)
    settings = AgentSettings(
        node_name=args.node_name,
        policy_file=Path(args.policy_file),
        listeners=listeners,
        node_ips=node_ips,
        audience=args.audience,
        kubeconfig=args.kubeconfig,
        region=args.region,
        sts_endpoint_url=args.sts_endpoint_url,
        rate=RateLimit(per_second=args.rate, burst=args.burst),
    )
    try:
        read_policy(settings.policy_file)  # an unusable policy is said before anything starts
    except PolicyError as e:
        print(f"imds-proxy: {e}", file=sys.stderr)
        return EXIT_FAILURE
    logs.setup(args.log_format, args.log_level.upper())

    async def run() -> None:
        async with KubeApi(settings.kubeconfig) as api:
            await run_agent(settings, api, default_client, admin=admin, handle_signals=True)

    try:
        asyncio.run(run())
    except (ApiError, PolicyError) as e:
        print(f"imds-proxy: {e}", file=sys.stderr)
        return EXIT_FAILURE
    return 0
