"""Network namespaces for the host tests: each with a unique random name, deleted afterwards;
veth pairs with unique names. Traffic stays inside the namespaces a test creates."""

from __future__ import annotations

import secrets
import subprocess
from collections.abc import Iterator, Sequence
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass

from sdk_support import skip_unless_ci


def ip(*args: str) -> str:
    done = subprocess.run(["ip", *args], capture_output=True, text=True, timeout=20, check=False)
    assert done.returncode == 0, f"ip {' '.join(args)}: {done.stderr.strip()}"
    return done.stdout


@dataclass(frozen=True)
class Netns:
    name: str

    def argv(self, *argv: str) -> list[str]:
        """`argv` run inside this namespace."""
        return ["ip", "netns", "exec", self.name, *argv]

    def sh(self, *argv: str, check: bool = True, timeout: float = 30) -> subprocess.CompletedProcess[str]:
        done = subprocess.run(self.argv(*argv), capture_output=True, text=True, timeout=timeout, check=False)
        if check:
            assert done.returncode == 0, f"{' '.join(argv)} in {self.name}: {done.stdout}{done.stderr}"
        return done

    def ip(self, *args: str) -> str:
        return ip("-n", self.name, *args)


def require_netns() -> None:
    """Skip, saying why, where namespaces cannot be made (no root, a locked-down container);
    under CI that is a failure."""
    probe = f"t9p{secrets.token_hex(4)}"
    done = subprocess.run(["ip", "netns", "add", probe], capture_output=True, text=True, check=False)
    if done.returncode != 0:
        skip_unless_ci(f"cannot create network namespaces here (`ip netns add`: {done.stderr.strip()})")
    subprocess.run(["ip", "netns", "del", probe], capture_output=True, check=False)


@contextmanager
def namespaces(count: int) -> Iterator[list[Netns]]:
    """`count` fresh namespaces with loopback up; all deleted on the way out."""
    require_netns()
    with ExitStack() as stack:
        made: list[Netns] = []
        for _ in range(count):
            ns = Netns(f"imdsp-{secrets.token_hex(5)}")
            ip("netns", "add", ns.name)
            stack.callback(subprocess.run, ["ip", "netns", "del", ns.name], capture_output=True, check=False)
            ns.ip("link", "set", "lo", "up")
            made.append(ns)
        yield made


def link(a: Netns, b: Netns, a_addrs: Sequence[str], b_addrs: Sequence[str]) -> tuple[str, str]:
    """A veth pair between `a` and `b`, up, with these addresses; returns the two names."""
    tag = secrets.token_hex(4)
    left, right = f"va{tag}", f"vb{tag}"
    ip("link", "add", left, "netns", a.name, "type", "veth", "peer", "name", right, "netns", b.name)
    for ns, dev, addrs in ((a, left, a_addrs), (b, right, b_addrs)):
        for addr in addrs:
            ns.ip("address", "add", addr, "dev", dev, *(("nodad",) if ":" in addr else ()))
        ns.ip("link", "set", dev, "up")
    return left, right
