"""`imds-proxy env`: the shell lines that point SDKs at a running daemon, over IMDS or the
container endpoint; never a secret."""

from __future__ import annotations

import argparse
import sys

from imds_proxy.cli.common import daemon_config, pick_role
from imds_proxy.config import Config, container
from imds_proxy.config.listeners import Listener
from imds_proxy.errors import ConfigError
from imds_proxy.runtime import shellenv


def _env_listener(cfg: Config, role: str | None) -> Listener:
    listeners = [lst for lst in cfg.listeners if role is None or cfg.listener_role(lst) == role]
    if not listeners:
        raise ConfigError(
            "listen",
            f"no listener serves role {role!r} over IMDS",
            f"add HOST:PORT={role} to listen, or use --container",
        )
    if listeners[0].port == 0:
        raise ConfigError("listen", f"{listeners[0]} has port 0 (chosen at start)", "give it a fixed port")
    return listeners[0]


def cmd_env(args: argparse.Namespace) -> int:
    cfg = daemon_config(args)
    role = pick_role(cfg, args.role) if args.role else None
    if not args.container:
        listener = _env_listener(cfg, role)
        url = container.base_url(container.client_host(listener), listener.port) + "/"
        change = shellenv.imds_change(url)
        comment = f"imds-proxy: role {cfg.listener_role(listener)} over IMDS at {url}"
        print(shellenv.render(change, args.shell, comment))
        return 0

    settings = cfg.container
    if settings.token_file is None:
        what = (
            "is set inline (container_token)"
            if settings.token
            else "is not set: the container endpoint is off"
        )
        raise ConfigError(
            "container_token_file",
            what,
            "set container_token_file: env never prints the token, it points SDKs at the file",
        )
    listener = _env_listener(cfg, None)
    host = container.client_host(listener)
    if not container.sdk_accepts(host):
        raise ConfigError(
            "listen",
            f"SDKs refuse plain-http container credentials from {host}",
            "listen on loopback (127.0.0.1) or on 169.254.170.2, 169.254.170.23 or [fd00:ec2::23]",
        )
    url = container.credentials_url(listener, role)
    token_file = str(settings.token_file.absolute())
    if not settings.token_file.exists():
        print(f"imds-proxy: note: {token_file} does not exist yet; the daemon creates it", file=sys.stderr)
    if cfg.clients.configured and cfg.clients.role_for(host) is None:
        print(f"imds-proxy: note: {host} is not in the client map, which will refuse it", file=sys.stderr)
    change = shellenv.container_change(url, token_file=token_file)
    served = role or cfg.listener_role(listener)
    print(shellenv.render(change, args.shell, f"imds-proxy: role {served} over the container endpoint {url}"))
    return 0
