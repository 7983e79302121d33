"""The hop limit of token replies: IP TTL / IPv6 hop limit set on the reply's connection, which
then closes, so not even a retransmission of the token travels further (EC2's
HttpPutResponseHopLimit)."""

from __future__ import annotations

import logging
import socket

from aiohttp import web

log = logging.getLogger("imds_proxy.hops")


def limit_hops(request: web.Request, response: web.StreamResponse, hops: int) -> None:
    """Send `response` (a token) with at most `hops` hops to live, on a connection that closes
    after it: TCP may retransmit the token later, and it must carry the same limit."""
    sock = request.transport.get_extra_info("socket") if request.transport is not None else None
    response.force_close()
    if sock is None:
        return
    try:
        if sock.family == socket.AF_INET6:
            sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_UNICAST_HOPS, hops)
        # Also on IPv6 sockets: a dual-stack socket speaks IPv4 to v4-mapped peers.
        sock.setsockopt(socket.IPPROTO_IP, socket.IP_TTL, hops)
    except OSError as e:
        log.warning("cannot set the token reply's hop limit: %s", e.strerror)
