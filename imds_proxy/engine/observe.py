"""What the engine reports about its source calls to whoever watches (metrics), without knowing
who: a small observer protocol and the observer that ignores everything."""

from __future__ import annotations

from typing import Protocol

#: The outcome of a source call that brought credentials (other outcomes are SourceError codes).
SUCCESS = "success"


class EngineObserver(Protocol):
    def fetched(self, role: str, outcome: str, seconds: float) -> None:
        """One call of a role's source (an STS request) ended: SUCCESS or an error code."""


class NoObserver:
    """The default: nobody watches."""

    def fetched(self, role: str, outcome: str, seconds: float) -> None:
        return None
