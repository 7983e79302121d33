"""The nftables redirect to the daemon, in one table of our own (`inet imds_proxy`), so applying
replaces only it and removing it is one command: the laptop's local-only redirect (output), and
containers on a bridge (prerouting)."""

from __future__ import annotations

import shutil
import subprocess
from dataclasses import dataclass

from imds_proxy.errors import ImdsProxyError

TABLE = "inet imds_proxy"
IMDS_V4 = "169.254.169.254"
IMDS_V6 = "fd00:ec2::254"
DEFAULT_PORT = 8169


class RedirectError(ImdsProxyError):
    """The rules could not be applied or removed; says what to do."""


@dataclass(frozen=True)
class Redirect:
    #: This host's own processes → the daemon on loopback (127.0.0.1 / [::1]).
    local: bool
    #: Bridge interfaces whose traffic to the metadata address goes to the daemon on the
    #: bridge's own address (`redirect`: no route_localnet needed, unlike DNAT to 127.0.0.1).
    bridges: tuple[str, ...]
    port: int = DEFAULT_PORT

    def ruleset(self) -> str:
        """The table, as `nft -f` reads it."""
        lines = [f"table {TABLE} {{"]
        if self.local:
            lines += [
                "  chain output {",
                "    type nat hook output priority -100; policy accept;",
                f"    ip daddr {IMDS_V4} tcp dport 80 dnat ip to 127.0.0.1:{self.port}",
                f"    ip6 daddr {IMDS_V6} tcp dport 80 dnat ip6 to [::1]:{self.port}",
                "  }",
            ]
        if self.bridges:
            lines += ["  chain prerouting {", "    type nat hook prerouting priority -100; policy accept;"]
            for bridge in self.bridges:
                lines += [
                    f'    iifname "{bridge}" ip daddr {IMDS_V4} tcp dport 80 redirect to :{self.port}',
                    f'    iifname "{bridge}" ip6 daddr {IMDS_V6} tcp dport 80 redirect to :{self.port}',
                ]
            lines.append("  }")
        return "\n".join([*lines, "}", ""])


def _nft(args: list[str], stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    if shutil.which("nft") is None:
        raise RedirectError("nft is not installed: apt-get install nftables")
    return subprocess.run(
        ["nft", *args], input=stdin, capture_output=True, text=True, timeout=10, check=False
    )


def _fail(action: str, done: subprocess.CompletedProcess[str]) -> RedirectError:
    message = (done.stderr.strip().splitlines() or ["failed"])[0]
    if "Operation not permitted" in done.stderr:
        message = "changing nftables rules needs root: run it with sudo"
    return RedirectError(f"cannot {action} the rules: {message}")


def apply(redirect: Redirect) -> None:
    """Install the table, replacing our previous one atomically (nothing else is touched)."""
    # Declaring the table first makes the delete succeed when it does not exist yet.
    script = f"table {TABLE} {{}}\ndelete table {TABLE}\n{redirect.ruleset()}"
    done = _nft(["-f", "-"], script)
    if done.returncode != 0:
        raise _fail("apply", done)


def remove() -> bool:
    """Delete our table; False when there was none."""
    done = _nft(["delete", "table", *TABLE.split()])
    if done.returncode == 0:
        return True
    if "No such file or directory" in done.stderr:
        return False
    raise _fail("remove", done)
