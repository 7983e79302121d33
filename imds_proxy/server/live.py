"""What a listener's app serves right now — the config and the listener value — held so that a
reload swaps it in one assignment while requests keep being answered."""

from __future__ import annotations

import functools
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

from imds_proxy.config import Config
from imds_proxy.config.listeners import Listener
from imds_proxy.server.wire import Reply


@dataclass(frozen=True)
class View:
    """One consistent state: a request reads one View and never sees half a reload."""

    config: Config
    listener: Listener
    #: IMDS paths whose answers do not change until the next View, rendered once.
    static: Mapping[str, Reply] = field(default_factory=dict)

    @functools.cached_property
    def role(self) -> str:
        return self.config.listener_role(self.listener)

    @functools.cached_property
    def name(self) -> str:
        """The listener as logs and metrics name it, worked out once per View."""
        return str(self.listener)

    @functools.cached_property
    def container_token(self) -> str | None:
        """The container channel's token when this listener speaks it; None: the channel is off."""
        return self.config.container.token if "container" in self.listener.channels else None


class Live:
    """The current View of one app; `swap` replaces it (the daemon's reload)."""

    def __init__(
        self, config: Config, listener: Listener, render: Callable[[View], Mapping[str, Reply]]
    ) -> None:
        self._render = render
        self.view = self._view(config, listener)

    def _view(self, config: Config, listener: Listener) -> View:
        bare = View(config, listener)
        return View(config, listener, self._render(bare))

    def swap(self, config: Config, listener: Listener) -> None:
        self.view = self._view(config, listener)
