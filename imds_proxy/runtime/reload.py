"""Reload (SIGHUP): the daemon's credential listeners by address, and the switch from one config
to the next — new sockets bound first, removed listeners drained, kept ones swapped in place."""

from __future__ import annotations

import asyncio
import logging
import socket
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

from imds_proxy.config import Config
from imds_proxy.config.listeners import Listener
from imds_proxy.engine.credentials import Source
from imds_proxy.engine.refresh import CredentialEngine
from imds_proxy.errors import ListenError
from imds_proxy.runtime import connections
from imds_proxy.server.app import App
from imds_proxy.server.site import Site

log = logging.getLogger("imds_proxy.reload")

#: Builds the next config and its sources again, as at start (raises ImdsProxyError).
Reloader = Callable[[], tuple[Config, Mapping[str, Source]]]
#: Builds an app for a listener (server.app.create_app with the daemon's shared parts).
AppFactory = Callable[[Config, Listener], App]
#: In-flight requests get this long to finish when their listener closes (SIGTERM, reload).
DRAIN_SECONDS = 10.0

Address = tuple[str, int]


def listen_socket(listener: Listener, flag: str = "--listen") -> socket.socket:
    """A bound, listening socket for `listener`; ListenError with the fix when it cannot be."""
    family = socket.AF_INET6 if ":" in listener.host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((listener.host, listener.port))
        sock.listen(connections.BACKLOG)
    except (OSError, UnicodeError) as e:
        sock.close()
        reason = getattr(e, "strerror", None) or str(e)
        hint = bind_hint(listener, e, flag)
        raise ListenError(f"cannot listen on {listener}: {reason}; {hint}", reason) from None
    sock.setblocking(False)
    return sock


def listener_socket(listener: Listener) -> socket.socket:
    """The listener's socket: the one systemd handed us (already bound and listening), or ours."""
    if listener.fd is not None:
        return socket.socket(fileno=listener.fd)
    return listen_socket(listener)


def listener_sockets(listeners: Sequence[Listener]) -> list[socket.socket]:
    """Every listener's socket, in order; ListenError, the ones bound so far closed again,
    when one cannot be had."""
    sockets: list[socket.socket] = []
    try:
        for listener in listeners:
            sockets.append(listener_socket(listener))
    except ListenError:
        for s in sockets:
            s.close()
        raise
    return sockets


def bind_hint(listener: Listener, e: Exception, flag: str = "--listen") -> str:
    """What to do about a listener that cannot be bound, by the reason it cannot."""
    errno = getattr(e, "errno", None)
    if isinstance(e, socket.gaierror) or errno in (-2, -3, -5):  # a name that does not resolve
        return "write an IP address of this host (e.g. 127.0.0.1), not a name"
    if errno == 99:  # EADDRNOTAVAIL
        return (
            f"{listener.host} is not an address of this host: add it (e.g. `ip addr add`) or listen elsewhere"
        )
    if errno == 13:  # EACCES
        return "ports below 1024 need root or CAP_NET_BIND_SERVICE"
    return f"pick another {flag} port, or stop what holds it"


@dataclass
class Opened:
    app: App
    site: Site
    bound: Listener


class ListenerSet:
    """The credential listeners, each an app on its own site, keyed by address."""

    def __init__(self, make_app: AppFactory, cap: int = connections.MAX_CONNECTIONS) -> None:
        self._make_app = make_app
        self._cap = cap  # connections held at once by each listener
        self._open: dict[Address, Opened] = {}

    @property
    def bound(self) -> list[Listener]:
        return [o.bound for o in self._open.values()]

    async def start(self, config: Config, listener: Listener, sock: socket.socket | None = None) -> Listener:
        """Serve `listener` (on `sock` if it is already bound); returns it as bound."""
        app = self._make_app(config, listener)
        site = Site(app, cap=self._cap)
        sock = sock or listener_socket(listener)
        try:
            port = await site.start(sock)
        except BaseException:
            sock.close()
            raise
        bound = listener.bound_to(port)
        app.live.swap(config, bound)  # the port the kernel picked, for metrics and logs
        self._open[(listener.host, listener.port)] = Opened(app, site, bound)
        return bound

    async def close(self, *addresses: Address) -> None:
        """Stop accepting on each, then let their requests in flight finish (bounded)."""
        opened = [self._open.pop(a) for a in addresses if a in self._open]
        await asyncio.gather(*(o.site.close(DRAIN_SECONDS) for o in opened))

    async def close_all(self) -> None:
        await self.close(*self._open)

    async def reload(
        self, old: Config, new: Config, engine: CredentialEngine, sources: Mapping[str, Source]
    ) -> None:
        """Switch to `new`. Raises ListenError, changing nothing, if an added listener cannot
        be bound."""
        wanted = {(lst.host, lst.port): lst for lst in new.listeners}
        added = [lst for a, lst in wanted.items() if a not in self._open]
        removed = [a for a in self._open if a not in wanted]
        sockets = listener_sockets(added)
        await self.close(*removed)  # drained while their roles are still in the engine
        engine.update(sources)
        for address, opened in self._open.items():
            # In one go, no await: every request reads the old view or the new one.
            opened.bound = wanted[address].bound_to(opened.bound.port)
            opened.app.live.swap(new, opened.bound)
        for listener, sock in zip(added, sockets, strict=True):
            where = await self.start(new, listener, sock)
            log.info("reload: listening on %s for role %s", where, new.listener_role(listener))
        for address in removed:
            log.info("reload: stopped listening on %s:%d", *address)
        if old.admin != new.admin:
            log.warning("reload: admin_listen changed; it takes effect at the next restart")
