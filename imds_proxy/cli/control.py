"""`imds-proxy mfa` and `imds-proxy roles`: the running daemon's control socket, from a terminal
(the code read from it, the roles' table printed to it)."""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path
from typing import Any

from imds_proxy import config
from imds_proxy.engine import mfa
from imds_proxy.errors import ControlError
from imds_proxy.runtime import control_socket


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
    return Path(str(raw)).expanduser() if raw else control_socket.default_path()


def cmd_mfa(args: argparse.Namespace) -> int:
    path = _control_path(args)
    info = control_socket.request(path, {"op": "mfa-role", "role": args.role}, timeout=10)
    if not info.get("ok"):
        raise ControlError(str(info.get("error")))
    code = read_code(f"MFA code for {info['serial']} (role {info['role']}): ").strip()
    if not mfa.CODE_RE.fullmatch(code):
        raise ControlError("an MFA code is six digits; run `imds-proxy mfa` again with the current one")
    reply = control_socket.request(path, {"op": "mfa", "role": info["role"], "code": code})
    if not reply.get("ok"):
        raise ControlError(str(reply.get("error")))
    print(reply["message"])
    return 0


def cmd_roles(args: argparse.Namespace) -> int:
    import json

    reply = control_socket.request(_control_path(args), {"op": "roles"}, timeout=10)
    if not reply.get("ok"):
        raise ControlError(str(reply.get("error")))
    print(json.dumps(reply["roles"], indent=2) if args.json else render_roles(reply["roles"]))
    return 0


def _ago(seconds: int | None) -> str:
    if seconds is None:
        return "-"
    sign, seconds = ("-" if seconds < 0 else ""), abs(seconds)
    hours, rest = divmod(seconds, 3600)
    return f"{sign}{hours}h{rest // 60:02d}m" if hours else f"{sign}{rest // 60}m{rest % 60:02d}s"


def render_roles(roles: list[dict[str, Any]]) -> str:
    """`imds-proxy roles` for a terminal: one line per role, then its error if any."""
    header = ("ROLE", "STATE", "CREDENTIALS", "MFA SESSION", "SOURCE")
    rows = [header]
    for r in roles:
        creds = f"{_ago(r['remaining_seconds'])} left ({r['key']})" if r["key"] else "none"
        mfa = r["mfa"]
        if mfa:
            left = "not opened"
            if mfa["remaining_seconds"] is not None:
                left = f"{_ago(mfa['remaining_seconds'])} left"
            mfa_text = f"{left}, {mfa['warnings']} warnings"
        else:
            mfa_text = "-"
        rows.append((r["name"], r["state"], creds, mfa_text, r["source"]))
    widths = [max(len(row[i]) for row in rows) for i in range(len(header) - 1)]
    lines = []
    for i, row in enumerate(rows):
        lines.append("  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=False)) + "  " + row[-1])
        if i and roles[i - 1]["last_error"]:
            lines.append(f"  last error ({roles[i - 1]['failures']} failures): {roles[i - 1]['last_error']}")
    return "\n".join(line.rstrip() for line in lines)


def read_code(prompt: str) -> str:
    """The code from the terminal (or one line of piped input)."""
    if sys.stdin.isatty():
        return input(prompt)
    print(prompt, end="", file=sys.stderr, flush=True)
    line = sys.stdin.readline()
    print(file=sys.stderr)  # the piped code is not echoed: end the prompt's line
    return line
