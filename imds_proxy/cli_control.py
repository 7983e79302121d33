"""`imds-proxy mfa` and `imds-proxy roles`: the running daemon's control socket, from a terminal."""

from __future__ import annotations

import argparse
import os
from pathlib import Path

from imds_proxy import config, control, mfa
from imds_proxy.errors import ControlError


def _control_path(args: argparse.Namespace) -> Path:
    """--control-socket, else IMDS_PROXY_CONTROL_SOCKET, else the config file's, else the default."""
    if args.control_socket:
        return Path(args.control_socket)
    values = config.read_env(os.environ)
    env_file = os.environ.get("IMDS_PROXY_CONFIG")
    file = args.config or (Path(env_file) if env_file else None)
    if file is not None and "control_socket" not in values:
        values = config.read_file(file)
    raw = values.get("control_socket")
    return Path(str(raw)).expanduser() if raw else control.default_path()


def cmd_mfa(args: argparse.Namespace) -> int:
    path = _control_path(args)
    info = control.request(path, {"op": "mfa-role", "role": args.role}, timeout=10)
    if not info.get("ok"):
        raise ControlError(str(info.get("error")))
    code = control.read_code(f"MFA code for {info['serial']} (role {info['role']}): ").strip()
    if not mfa.CODE_RE.fullmatch(code):
        raise ControlError("an MFA code is six digits; run `imds-proxy mfa` again with the current one")
    reply = control.request(path, {"op": "mfa", "role": info["role"], "code": code})
    if not reply.get("ok"):
        raise ControlError(str(reply.get("error")))
    print(reply["message"])
    return 0


def cmd_roles(args: argparse.Namespace) -> int:
    import json

    reply = control.request(_control_path(args), {"op": "roles"}, timeout=10)
    if not reply.get("ok"):
        raise ControlError(str(reply.get("error")))
    print(json.dumps(reply["roles"], indent=2) if args.json else control.render_roles(reply["roles"]))
    return 0
