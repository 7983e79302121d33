"""Who reaches this host's metadata service, in namespaces the tests create (docs/host.md): a
LAN neighbour is refused, a client two hops away gets no token at EC2's hop limit, containers
behind a bridge reach it through `imds-proxy redirect --bridge`, this host's own processes
through `--local`, and `imds-proxy address` leaves the namespace as it found it."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from host_support import daemon, daemon_env, fetch_key, moto_sts, shared_venv, wait_for_key  # noqa: F401
from netns import Netns, link, namespaces
from procs import isolated_env

IMDS = [sys.executable, "-m", "imds_proxy"]


def serve(ns: Netns, log: Path, sts: str, *options: str) -> daemon:  # type: ignore[valid-type]
    return daemon(ns.argv(*IMDS, "serve", *options), daemon_env(sts), log)


@pytest.fixture(scope="module")
def routed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Netns]]:
    """host ─ neighbour (one hop), host ─ router ─ far (two hops); the host owns the address and
    runs a daemon on :80 (default hop limit) and one on :81 with --hop-limit 3, both allowing far."""
    logs = tmp_path_factory.mktemp("routed")
    with namespaces(4) as (host, near, router, far):
        subprocess.run([*host.argv(*IMDS, "address", "up")], check=True, capture_output=True)
        link(host, near, ["10.1.0.1/24"], ["10.1.0.2/24"])
        near.ip("route", "add", "169.254.169.254/32", "via", "10.1.0.1")
        link(host, router, ["10.2.0.1/24"], ["10.2.0.2/24"])
        link(router, far, ["10.3.0.1/24"], ["10.3.0.2/24"])
        router.sh("sysctl", "-qw", "net.ipv4.ip_forward=1")
        router.ip("route", "add", "169.254.169.254/32", "via", "10.2.0.1")
        host.ip("route", "add", "10.3.0.0/24", "via", "10.2.0.2")
        far.ip("route", "add", "default", "via", "10.3.0.1")
        with moto_sts(host) as sts:
            allow = ("--allow-client=10.3.0.0/24",)
            with (
                serve(host, logs / "hop1.log", sts, "--listen", "169.254.169.254:80", *allow) as one,
                serve(host, logs / "hop3.log", sts, "--listen=169.254.169.254:81", *allow, "--hop-limit=3"),
            ):
                wait_for_key(host, "http://169.254.169.254:80/", one, logs / "hop1.log")
                wait_for_key(host, "http://169.254.169.254:81/", one, logs / "hop3.log")
                yield {"host": host, "near": near, "far": far, "logs": logs}  # type: ignore[dict-item]


def test_a_neighbour_routing_the_address_here_is_refused_before_any_token(routed: dict[str, Netns]) -> None:
    assert fetch_key(routed["near"], "http://169.254.169.254/").startswith("ERROR 403")
    log = (Path(str(routed["logs"])) / "hop1.log").read_text()
    assert "refused status=403 peer=10.1.0.2 listener=169.254.169.254:80" in log


def test_a_client_two_hops_away_gets_no_token_at_the_default_hop_limit(routed: dict[str, Netns]) -> None:
    assert fetch_key(routed["far"], "http://169.254.169.254:80/", timeout=2).startswith("ERROR Timeout")


def test_a_client_two_hops_away_gets_a_token_with_hop_limit_3(routed: dict[str, Netns]) -> None:
    assert fetch_key(routed["far"], "http://169.254.169.254:81/").startswith("ASIA")


def boto3_key(ns: Netns, home: Path, **extra: str) -> str:
    home.mkdir(exist_ok=True)
    code = "import boto3; c = boto3.Session().get_credentials(); print(c.method, c.access_key)"
    argv = ns.argv(sys.executable, "-c", code)
    done = subprocess.run(argv, env=isolated_env(home, extra), capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    method, key = done.stdout.split()
    assert method == "iam-role"
    return key


def test_containers_on_a_bridge_reach_the_daemon_through_the_redirect(tmp_path: Path) -> None:
    with namespaces(3) as (host, one, two):
        bridge = f"br{one.name[-8:]}"
        host.ip("link", "add", bridge, "type", "bridge")
        host.ip("address", "add", "10.4.0.1/24", "dev", bridge)
        host.ip("link", "set", bridge, "up")
        for ns, addr in ((one, "10.4.0.2/24"), (two, "10.4.0.3/24")):
            outside, _ = link(host, ns, [], [addr])
            host.ip("link", "set", outside, "master", bridge)
            ns.ip("route", "add", "default", "via", "10.4.0.1")
        host.sh(*IMDS, "redirect", "--bridge", bridge, "--apply")
        token = tmp_path / "container-token"
        with moto_sts(host) as sts:
            options = ("--listen", "10.4.0.1:8169", "--container-token-file", str(token))
            with serve(host, tmp_path / "d.log", sts, *options, "--client", "10.4.0.2=host-role") as proc:
                key = wait_for_key(host, "http://10.4.0.1:8169/", proc, tmp_path / "d.log")
                assert boto3_key(one, tmp_path / "home") == key  # no setting: 169.254.169.254:80
                assert fetch_key(two, "http://169.254.169.254/").startswith("ERROR 403")
        host.sh(*IMDS, "redirect", "--remove")
        assert host.sh("nft", "list", "table", "inet", "imds_proxy", check=False).returncode != 0


def test_the_local_redirect_serves_this_hosts_processes_from_loopback(tmp_path: Path) -> None:
    with namespaces(2) as (laptop, lan):
        link(laptop, lan, ["10.5.0.1/24", "fd05::1/64"], ["10.5.0.2/24", "fd05::2/64"])
        laptop.ip("route", "add", "default", "via", "10.5.0.2")
        laptop.ip("-6", "route", "add", "default", "via", "fd05::2")
        laptop.sh(*IMDS, "redirect", "--local", "--apply")
        with moto_sts(laptop) as sts:
            listen = ("--listen", "127.0.0.1:8169", "--listen", "[::1]:8169")
            with serve(laptop, tmp_path / "d.log", sts, *listen) as proc:
                key = wait_for_key(laptop, "http://127.0.0.1:8169/", proc, tmp_path / "d.log")
                assert boto3_key(laptop, tmp_path / "h4") == key
                ipv6 = {"AWS_EC2_METADATA_SERVICE_ENDPOINT_MODE": "IPv6"}
                assert boto3_key(laptop, tmp_path / "h6", **ipv6) == key
        assert "removed table inet imds_proxy" in laptop.sh(*IMDS, "redirect", "--remove").stdout


def _state(ns: Netns) -> list[tuple[str, list[str]]]:
    links = json.loads(ns.ip("-j", "address", "show"))
    return sorted((x["ifname"], sorted(a["local"] for a in x.get("addr_info", []))) for x in links)


def test_address_up_twice_then_down_leaves_the_namespace_as_it_was() -> None:
    with namespaces(1) as (ns,):
        before = _state(ns)
        first = ns.sh(*IMDS, "address", "up").stdout
        assert "added 169.254.169.254/32 to imds0" in first and "added fd00:ec2::254/128 to imds0" in first
        assert "nothing to do" in ns.sh(*IMDS, "address", "up").stdout
        assert ns.sh(*IMDS, "address", "status").stdout.count(": up") == 2
        down = ns.sh(*IMDS, "address", "down").stdout
        assert "deleted link imds0" in down
        assert _state(ns) == before
        assert ns.sh(*IMDS, "address", "status", check=False).returncode == 3


def test_address_up_refuses_an_address_held_by_another_interface() -> None:
    with namespaces(1) as (ns,):
        ns.ip("address", "add", "169.254.169.254/32", "dev", "lo")
        done = ns.sh(*IMDS, "address", "up", check=False)
        assert done.returncode == 1 and done.stderr.count("\n") == 1
        assert "169.254.169.254/32 is already on lo" in done.stderr and "Traceback" not in done.stderr


def test_address_up_as_a_user_says_to_run_it_as_root(shared_venv: Path) -> None:  # noqa: F811
    argv = ["setpriv", "--reuid=nobody", "--regid=nogroup", "--clear-groups"]
    argv += [str(shared_venv / "bin" / "imds-proxy"), "address", "up"]
    done = subprocess.run(argv, capture_output=True, text=True, timeout=30)
    assert done.returncode == 1 and "run it as root" in done.stderr and done.stderr.count("\n") == 1
