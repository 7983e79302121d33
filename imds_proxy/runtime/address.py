"""The metadata address on a link of our own (`imds0`, marked with the alias `imds-proxy`, as the
EKS Pod Identity agent keeps its own link): up, down and status with iproute2. Idempotent."""

from __future__ import annotations

import ipaddress
import json
import os
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from imds_proxy.config.clients import IpNetwork
from imds_proxy.errors import ImdsProxyError

DEFAULT_LINK = "imds0"
DEFAULT_ADDRESSES = ("169.254.169.254/32", "fd00:ec2::254/128")
#: The link's alias: `down` deletes only a link that carries it, never one it did not create.
MARK = "imds-proxy"


class AddressError(ImdsProxyError):
    """The address could not be put up or taken down; says what to do."""


@dataclass(frozen=True)
class Status:
    link_exists: bool
    present: tuple[IpNetwork, ...]
    missing: tuple[IpNetwork, ...]


def parse(values: list[str] | None) -> tuple[IpNetwork, ...]:
    """`--address CIDR` values (default: EC2's two metadata addresses)."""
    out: list[IpNetwork] = []
    for value in values or DEFAULT_ADDRESSES:
        try:
            out.append(ipaddress.ip_network(value, strict=False))
        except ValueError:
            fix = "write an address/prefix, e.g. 169.254.170.23/32"
            raise AddressError(f"--address {value!r} is not an address: {fix}") from None
    return tuple(out)


def _ip(*args: str) -> str:
    if shutil.which("ip") is None:
        raise AddressError("ip (iproute2) is not installed: apt-get install iproute2")
    done = subprocess.run(["ip", *args], capture_output=True, text=True, timeout=10, check=False)
    if done.returncode != 0:
        message = (done.stderr.strip().splitlines() or ["failed"])[-1]
        raise AddressError(f"ip {' '.join(args)}: {message}")
    return done.stdout


def _links() -> list[dict[str, Any]]:
    links: list[dict[str, Any]] = json.loads(_ip("-j", "address", "show") or "[]")
    return links


def _where(links: list[dict[str, Any]]) -> dict[IpNetwork, str]:
    """Every address on every link, as network → link name."""
    out: dict[IpNetwork, str] = {}
    for link in links:
        for a in link.get("addr_info", []):
            out[ipaddress.ip_network(f"{a['local']}/{a['prefixlen']}", strict=False)] = link["ifname"]
    return out


def status(link: str, addresses: tuple[IpNetwork, ...]) -> Status:
    links = _links()
    where = _where(links)
    present = tuple(a for a in addresses if where.get(a) == link)
    missing = tuple(a for a in addresses if a not in present)
    return Status(any(x["ifname"] == link for x in links), present, missing)


def _require_root(action: str) -> None:
    if os.geteuid() != 0:
        raise AddressError(f"`imds-proxy address {action}` changes network links: run it as root (sudo)")


def _create(link: str) -> str:
    """A dummy link; where the kernel has no dummy driver, an empty bridge, which holds
    addresses the same way. Returns the kind made."""
    kind = "dummy"
    try:
        _ip("link", "add", link, "type", "dummy")
    except AddressError as e:
        if "Unknown device type" not in str(e):
            raise
        kind = "bridge"
        _ip("link", "add", link, "type", "bridge")
    _ip("link", "set", link, "alias", MARK)
    return kind


def up(link: str, addresses: tuple[IpNetwork, ...]) -> list[str]:
    """Put `addresses` on `link` (created if missing) and bring it up; what was done, one line each."""
    _require_root("up")
    done: list[str] = []
    links = _links()
    for address, other in _where(links).items():
        if address in addresses and other != link:
            raise AddressError(
                f"{address} is already on {other}: remove it there (ip address del {address} dev {other}) "
                f"or pass --link {other}"
            )
    if not any(x["ifname"] == link for x in links):
        done.append(f"created link {link} ({_create(link)})")
    _ip("link", "set", link, "up")
    sysctl = Path(f"/proc/sys/net/ipv6/conf/{link}/disable_ipv6")
    if any(a.version == 6 for a in addresses) and sysctl.exists() and sysctl.read_text().strip() != "0":
        sysctl.write_text("0")
    for address in status(link, addresses).missing:
        # nodad: the address is ours alone, and is usable at once (no tentative state).
        _ip("address", "add", str(address), "dev", link, *(("nodad",) if address.version == 6 else ()))
        done.append(f"added {address} to {link}")
    return done


def down(link: str, addresses: tuple[IpNetwork, ...]) -> list[str]:
    """Take `addresses` off `link`; delete the link if we made it and nothing else is on it."""
    _require_root("down")
    now = status(link, addresses)
    if not now.link_exists:
        return []
    done: list[str] = []
    for address in now.present:
        _ip("address", "del", str(address), "dev", link)
        done.append(f"removed {address} from {link}")
    info = json.loads(_ip("-j", "-d", "link", "show", link))[0]
    rest = [a for a in _where(_links()).items() if a[1] == link and not a[0].network_address.is_link_local]
    if info.get("ifalias") == MARK and not rest:
        _ip("link", "del", link)
        done.append(f"deleted link {link}")
    return done
