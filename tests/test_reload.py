"""Reload on SIGHUP and the systemd notify protocol, on a real `serve` process: requests in a loop
all succeed across a reload; unchanged roles keep their keys; listeners come and go; a broken
config is refused and the old one stays."""

from __future__ import annotations

import contextlib
import json
import signal
import socket
import threading
import time
import urllib.error
from pathlib import Path
from typing import Any

from conftest import EC2_TRUST
from fakes import remember
from procs import daemon, imds_credentials, isolated_env

SOURCE_KEYS = {"AWS_ACCESS_KEY_ID": "AKIAIOSFODNN7EXAMPLE", "AWS_SECRET_ACCESS_KEY": "example-secret-key"}


def free_ports(n: int) -> list[int]:
    socks = [socket.socket() for _ in range(n)]
    for s in socks:
        s.bind(("127.0.0.1", 0))
    ports = [s.getsockname()[1] for s in socks]
    for s in socks:
        s.close()
    return ports


def config_text(listen: list[str], roles: dict[str, tuple[str, str]], aws: Any) -> str:
    lines = [f"listen = {json.dumps(listen)}", f'sts_endpoint_url = "{aws.url}"', 'region = "us-east-1"']
    lines.append('admin_listen = "off"')
    for name, (arn, session) in roles.items():
        lines += [f"[roles.{name}]", f'role_arn = "{arn}"', f'role_session_name = "{session}"']
    return "\n".join(lines) + "\n"


class Load:
    """Fetches credentials from one listener in a loop (bounded in count and time)."""

    def __init__(self, base: str, limit: int = 3000, seconds: float = 30) -> None:
        self.base, self.limit, self.seconds = base, limit, seconds
        self.ok = 0
        self.errors: list[str] = []
        self.keys: set[str] = set()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        deadline = time.monotonic() + self.seconds
        while self.ok + len(self.errors) < self.limit and time.monotonic() < deadline:
            if self._stop.is_set():
                break
            try:
                self.keys.add(remember(imds_credentials(self.base))["AccessKeyId"])
                self.ok += 1
            except (OSError, urllib.error.URLError, ValueError) as e:
                self.errors.append(repr(e))

    def __enter__(self) -> Load:
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        self._thread.join(timeout=15)


def test_reload_under_load_keeps_unchanged_roles_and_moves_listeners(
    tmp_path: Path, local_aws: Any
) -> None:
    trust = json.dumps(EC2_TRUST)
    third = local_aws.client("iam").create_role(RoleName="reload-third", AssumeRolePolicyDocument=trust)
    arn, third_arn = local_aws.role_arn, third["Role"]["Arn"]
    a, b, c, d_port = free_ports(4)
    file = tmp_path / "config.toml"
    file.write_text(
        config_text(
            [f"127.0.0.1:{a}=one", f"127.0.0.1:{b}=two", f"127.0.0.1:{d_port}=one"],
            {"one": (arn, "first"), "two": (arn, "second")},
            local_aws,
        )
    )
    notify = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    notify.bind(str(tmp_path / "notify"))
    notify.settimeout(20)
    env = isolated_env(tmp_path, {**SOURCE_KEYS, "NOTIFY_SOCKET": str(tmp_path / "notify")})
    with daemon(["serve", "--config", str(file)], env) as d:
        assert notify.recv(200) == b"READY=1"
        one, two = (f"http://127.0.0.1:{p}/" for p in (a, b))
        key_one, key_two = imds_credentials(one)["AccessKeyId"], imds_credentials(two)["AccessKeyId"]
        file.write_text(
            config_text(
                [f"127.0.0.1:{a}=one", f"127.0.0.1:{b}=two", f"127.0.0.1:{c}=three"],
                {"one": (arn, "first"), "two": (arn, "second-changed"), "three": (third_arn, "third")},
                local_aws,
            )
        )
        with Load(one) as load:
            while load.ok < 20:
                time.sleep(0.01)
            started, at_hup = time.monotonic(), load.ok
            d.proc.send_signal(signal.SIGHUP)
            d.wait_for(r"reloaded: roles one, two, three")
            reload_seconds, during = time.monotonic() - started, load.ok - at_hup
            before = load.ok
            while load.ok < before + 20:
                time.sleep(0.01)
        assert load.errors == [] and load.ok >= 40
        assert load.keys == {key_one}  # unchanged role: the same cached credentials throughout
        assert notify.recv(200).startswith(b"RELOADING=1\nMONOTONIC_USEC=")
        assert notify.recv(200) == b"READY=1"
        assert imds_credentials(two)["AccessKeyId"] != key_two  # changed role: assumed again
        assert imds_credentials(f"http://127.0.0.1:{c}/", "three")["Code"] == "Success"
        try:
            imds_credentials(f"http://127.0.0.1:{d_port}/")
            raise AssertionError("a removed listener still answers")
        except urllib.error.URLError:
            pass

        file.write_text("listen = [\n")  # broken
        d.proc.send_signal(signal.SIGHUP)
        refused = d.wait_for(r"reload refused, the running config stays: (.*)").group(1)
        assert "not valid TOML" in refused
        assert imds_credentials(one)["AccessKeyId"] == key_one
        assert d.stop() == 0
        assert notify.recv(200).startswith(b"RELOADING=1")
        assert notify.recv(200) == b"READY=1"
        assert notify.recv(200) == b"STOPPING=1"
    notify.close()
    ms = reload_seconds * 1000
    print(f"reload under load: {load.ok} requests, 0 failed; {during} during the {ms:.0f} ms reload")


def test_watchdog_pings_at_half_the_timeout_only_when_meant_for_us(tmp_path: Path, local_aws: Any) -> None:
    args = ["serve", "--role-arn", local_aws.role_arn, "--sts-endpoint-url", local_aws.url]
    args += ["--region", "us-east-1", "--listen", "127.0.0.1:0", "--admin-listen", "off"]
    for owner, expect in (("", True), ("1", False)):  # WATCHDOG_PID=1: meant for another process
        path = tmp_path / f"notify{owner}"
        notify = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        notify.bind(str(path))
        notify.settimeout(5)
        extra = {**SOURCE_KEYS, "NOTIFY_SOCKET": str(path), "WATCHDOG_USEC": "400000"}
        if owner:
            extra["WATCHDOG_PID"] = owner
        with daemon(args, isolated_env(tmp_path, extra)) as d:
            assert notify.recv(100) == b"READY=1"
            started = time.monotonic()
            got = []
            notify.settimeout(0.2)
            while time.monotonic() - started < 0.7:
                with contextlib.suppress(TimeoutError):
                    got.append(notify.recv(100))
            assert d.stop() == 0
        notify.close()
        pings = got.count(b"WATCHDOG=1")
        assert (2 <= pings <= 4) if expect else pings == 0, got
