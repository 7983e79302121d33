"""What the apps report to whoever watches (metrics, the audit trail): one call per request, one
per credential set served; the observer that only writes the audit line is the default."""

from __future__ import annotations

import functools
import hashlib
import json
import logging
from typing import Literal, NamedTuple, Protocol

from imds_proxy.server.wire import Ask

#: The audit trail's logger: the daemon sends it through a queue to its own handler.
AUDIT_LOGGER = "imds_proxy.audit"
audit_log = logging.getLogger(AUDIT_LOGGER)

Channel = Literal["imdsv1", "imdsv2", "container"]
#: User agents are client-chosen text: cut to this length before they reach a log line.
_USER_AGENT_MAX = 200


@functools.lru_cache(maxsize=1024)  # pure; a session sends one token on every request
def token_hash(token: str | None) -> str | None:
    """Enough of the token's SHA-256 to tell sessions apart in the audit trail, never the token."""
    if token is None:
        return None
    return "sha256:" + hashlib.sha256(token.encode("utf-8", "replace")).hexdigest()[:16]


class CredentialsServed(NamedTuple):
    """One credential set handed to one client: the audit record (CloudTrail's AssumeRole,
    locally). A named tuple: one is made per credential answer, a frozen dataclass costs 3x."""

    client: str | None
    user_agent: str | None
    role: str
    key_suffix: str
    channel: Channel
    token_hash: str | None

    @classmethod
    def of(cls, ask: Ask, role: str, key: str, channel: Channel, token: str | None) -> CredentialsServed:
        ua = ask.headers.get("User-Agent")
        agent = ua[:_USER_AGENT_MAX] if ua else None
        return cls(ask.remote, agent, role, key, channel, token_hash(token))

    def fields(self) -> dict[str, str | None]:
        return {
            "event": "credentials_served",
            "channel": self.channel,
            "client": self.client,
            "role": self.role,
            "key": self.key_suffix,
            "token_hash": self.token_hash,
            "user_agent": self.user_agent,
        }

    def line(self) -> str:
        """The text form: key=value, the user agent JSON-quoted (escaped: it is the client's text)."""
        return (
            f"served credentials channel={self.channel} client={self.client} role={self.role} "
            f"key={self.key_suffix} token={self.token_hash or '-'} "
            f"ua={_quoted(self.user_agent)}"
        )


@functools.lru_cache(maxsize=256)  # pure; an SDK sends one user agent on every request
def _quoted(user_agent: str | None) -> str:
    return json.dumps(user_agent, ensure_ascii=True)


class RequestObserver(Protocol):
    def request(self, listener: str, route: str, status: int, refused: str | None) -> None:
        """A request was answered (`refused`: why a client was turned away, if it was)."""

    def served(self, event: CredentialsServed) -> None:
        """A credential set was served."""


class AuditOnly:
    """The default observer: the audit line for each credential set served, nothing else."""

    def request(self, listener: str, route: str, status: int, refused: str | None) -> None:
        return None

    def served(self, event: CredentialsServed) -> None:
        if audit_log.isEnabledFor(logging.INFO):
            # Made directly: Logger.info would walk the stack for a caller (file, line) no format
            # shows. The record's `audit` is the event: the JSON formatter writes its fields.
            line, extra = event.line(), {"audit": event}
            made = audit_log.makeRecord(AUDIT_LOGGER, logging.INFO, "", 0, line, (), None, None, extra)
            audit_log.handle(made)
