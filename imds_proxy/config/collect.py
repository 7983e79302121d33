"""Collecting the ConfigErrors of independent keys, so that one run reports every one of them."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import TypeVar

from imds_proxy.errors import ConfigError, ConfigErrors

T = TypeVar("T")


class Collector:
    """Runs independent checks, keeping each one's ConfigError instead of stopping at the first."""

    def __init__(self, errors: Iterable[ConfigError] = ()) -> None:
        self.errors: list[ConfigError] = []
        for error in errors:
            self.add(error)

    def add(self, error: ConfigError) -> None:
        self.errors.extend(error.errors if isinstance(error, ConfigErrors) else (error,))

    def take(self, check: Callable[[], T], failed: T) -> T:
        """What `check` returns; `failed`, with its error kept, when it raises ConfigError."""
        try:
            return check()
        except ConfigError as e:
            self.add(e)
            return failed

    def raise_found(self) -> None:
        """Raise what was found: the one ConfigError as it is, several as ConfigErrors."""
        if len(self.errors) == 1:
            raise self.errors[0]
        if self.errors:
            raise ConfigErrors(self.errors)
