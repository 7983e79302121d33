"""The peer gate: a listener answers only this host's own processes and the networks allowed
(config/peers.py), on every channel, before any token or credential is issued."""

from __future__ import annotations

import errno
import ipaddress
import logging
import socket
from pathlib import Path

from imds_proxy.config.clients import client_address
from imds_proxy.config.listeners import Listener
from imds_proxy.config.peers import IpAddress
from imds_proxy.server.wire import Ask, Reply

log = logging.getLogger("imds_proxy.peers")

#: With these sysctls on, binding to any address succeeds, so a bind says nothing about
#: whether the address is ours: then only loopback counts as local (fail closed).
_NONLOCAL_BIND = {
    4: Path("/proc/sys/net/ipv4/ip_nonlocal_bind"),
    6: Path("/proc/sys/net/ipv6/ip_nonlocal_bind"),
}


def _nonlocal_bind(version: int) -> bool:
    try:
        return _NONLOCAL_BIND[version].read_text().strip() != "0"
    except OSError:
        return False


def is_own_address(ip: IpAddress) -> bool:
    """Is `ip` an address of an interface in this network namespace? Asked of the kernel on
    every request (a bind succeeds only on an own address), so it is never stale."""
    if ip.is_loopback:
        return True
    if isinstance(ip, ipaddress.IPv6Address) and ip.is_link_local:
        return False  # the peer's scope id is not known here: allow such networks explicitly
    if _nonlocal_bind(ip.version):
        return False
    family = socket.AF_INET6 if ip.version == 6 else socket.AF_INET
    with socket.socket(family, socket.SOCK_DGRAM) as probe:
        try:
            probe.bind((str(ip), 0))
        except OSError as e:
            if e.errno not in (errno.EADDRNOTAVAIL, errno.EINVAL):
                log.warning("cannot tell whether %s is this host's address: %s", ip, e.strerror)
            return False
    return True


def is_own_peer(remote: str | None) -> bool:
    """Is the peer a process on this host (any of its addresses)?"""
    ip = client_address(remote)
    return ip is not None and is_own_address(ip)


def peer_refusal(ask: Ask, listener: Listener) -> Reply | None:
    """The refusal for a peer the listener's policy does not admit; None: go on."""
    # A LAN neighbour that routes 169.254.169.254 (or the daemon's port) to this host must not
    # get a token or credentials (the attack AdRoll/hologram #95 showed against a loopback alias).
    if listener.peers.admits(ask.remote, is_own_address):
        return None
    log.warning(
        "refused status=403 peer=%s listener=%s: not this host's address nor in allow_clients",
        ask.remote,
        listener,
    )
    return _NOT_ADMITTED


_NOT_ADMITTED = Reply.text(403, "403 - Forbidden (this client may not ask here)")
