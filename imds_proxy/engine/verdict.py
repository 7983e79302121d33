"""A verdict on one step of `imds-proxy doctor`: ok, FAIL, skip (with the reason) or warn, and
one line of text saying what was found and what to do."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

Status = Literal["ok", "FAIL", "skip", "warn"]


@dataclass(frozen=True)
class Verdict:
    status: Status
    text: str

    @property
    def passed(self) -> bool:
        """Only FAIL fails: a skip could not tell, a warn works as configured but not as meant."""
        return self.status != "FAIL"

    def __str__(self) -> str:
        return f"{self.status:<4} {self.text}"


def ok(text: str) -> Verdict:
    return Verdict("ok", text)


def fail(text: str) -> Verdict:
    return Verdict("FAIL", text)


def skip(text: str) -> Verdict:
    return Verdict("skip", text)


def warn(text: str) -> Verdict:
    return Verdict("warn", text)
