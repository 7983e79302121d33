"""Network namespaces for the wire tests: a "node" and a "pod" namespace joined by a veth pair,
with unique random names, every address on the veth ends only, all deleted afterwards."""

from __future__ import annotations

import contextlib
import ctypes
import os
import secrets
import shutil
import socket
import subprocess
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass

from imds_proxy.config.listeners import Listener

from sdk_support import skip_unless_ci

CLONE_NEWNET = 0x40000000
POD_IP, POD_IP6 = "10.213.0.2", "fd00:213::2"
AGENT_IP, AGENT_IP6 = "169.254.170.23", "fd00:ec2::23"


def _ip(*args: str, netns: str | None = None) -> None:
    cmd = ["ip", *(["-n", netns] if netns else []), *args]
    subprocess.run(cmd, check=True, capture_output=True, timeout=10)


def require_netns() -> None:
    if shutil.which("ip") is None:
        skip_unless_ci("`ip` (iproute2) is not installed: apt-get install iproute2")
    if os.geteuid() != 0:
        skip_unless_ci("network namespaces need root")


@dataclass(frozen=True)
class Namespaces:
    node: str
    pod: str

    def bind_in_node(self) -> Callable[[Listener], socket.socket]:
        """A Bind for the agent: its listening sockets are made inside the node namespace (by a
        thread that enters it), while the agent's own calls leave from this one's loopback."""
        from imds_proxy.runtime.reload import listen_socket

        libc = ctypes.CDLL(None, use_errno=True)

        def bind(listener: Listener) -> socket.socket:
            result: dict[str, object] = {}

            def work() -> None:
                fd = os.open(f"/var/run/netns/{self.node}", os.O_RDONLY)
                try:
                    if libc.setns(fd, CLONE_NEWNET) != 0:
                        raise OSError(ctypes.get_errno(), "setns failed")
                    result["sock"] = listen_socket(listener)
                except BaseException as e:
                    result["error"] = e
                finally:
                    os.close(fd)

            thread = threading.Thread(target=work)
            thread.start()
            thread.join(10)
            if "error" in result:
                raise result["error"]  # type: ignore[misc]
            sock = result["sock"]
            assert isinstance(sock, socket.socket)
            return sock

        return bind


@contextlib.contextmanager
def node_and_pod() -> Iterator[Namespaces]:
    """The pod namespace reaches 169.254.170.23 and [fd00:ec2::23] on the node namespace's end
    of a veth pair; the node end routes the pod's addresses back."""
    tag = secrets.token_hex(4)
    ns = Namespaces(node=f"imdsk-node-{tag}", pod=f"imdsk-pod-{tag}")
    node_end, pod_end = f"ikn{tag}", f"ikp{tag}"  # 11 characters
    made: list[str] = []
    try:
        for name in (ns.node, ns.pod):
            _ip("netns", "add", name)
            made.append(name)
        _ip(
            "link",
            "add",
            node_end,
            "netns",
            ns.node,
            "type",
            "veth",
            "peer",
            "name",
            pod_end,
            "netns",
            ns.pod,
        )
        for name, end in ((ns.node, node_end), (ns.pod, pod_end)):
            _ip("link", "set", "lo", "up", netns=name)
            _ip("link", "set", end, "up", netns=name)
        _ip("addr", "add", f"{AGENT_IP}/32", "dev", node_end, netns=ns.node)
        _ip("-6", "addr", "add", f"{AGENT_IP6}/128", "dev", node_end, "nodad", netns=ns.node)
        _ip("route", "add", f"{POD_IP}/32", "dev", node_end, netns=ns.node)
        _ip("-6", "route", "add", f"{POD_IP6}/128", "dev", node_end, netns=ns.node)
        _ip("addr", "add", f"{POD_IP}/32", "dev", pod_end, netns=ns.pod)
        _ip("-6", "addr", "add", f"{POD_IP6}/128", "dev", pod_end, "nodad", netns=ns.pod)
        _ip("route", "add", f"{AGENT_IP}/32", "dev", pod_end, netns=ns.pod)
        _ip("-6", "route", "add", f"{AGENT_IP6}/128", "dev", pod_end, netns=ns.pod)
        yield ns
    finally:
        for name in reversed(made):  # deleting a namespace deletes its veth end, and so the pair
            subprocess.run(["ip", "netns", "delete", name], capture_output=True, timeout=10)


def add_second_pod_address(ns: Namespaces, address: str) -> None:
    """A second pod's address in the pod namespace, routed back from the node; the pod
    namespace's own requests to the agent still leave from POD_IP."""
    pod_end = next(
        line.split(":")[1].strip().split("@")[0]
        for line in subprocess.run(
            ["ip", "-n", ns.pod, "-o", "link", "show", "type", "veth"],
            capture_output=True,
            text=True,
            check=True,
        ).stdout.splitlines()
    )
    node_end = "ikn" + pod_end[3:]
    subprocess.run(
        ["ip", "-n", ns.pod, "addr", "add", f"{address}/32", "dev", pod_end], check=True, timeout=10
    )
    subprocess.run(
        ["ip", "-n", ns.node, "route", "add", f"{address}/32", "dev", node_end], check=True, timeout=10
    )
    # The SDKs' requests leave from the first pod's address.
    subprocess.run(
        ["ip", "-n", ns.pod, "route", "replace", f"{AGENT_IP}/32", "dev", pod_end, "src", POD_IP],
        check=True,
        timeout=10,
    )
