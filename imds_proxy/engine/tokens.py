"""IMDSv2 session tokens: stateless, HMAC-signed expiry times; pure, with an injected clock."""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
import secrets
import struct
from collections.abc import Callable

#: IMDSv2 on the wire: PUT this path with the TTL header for a token; send it in the token header.
TOKEN_PATH = "/latest/api/token"
TTL_HEADER = "X-aws-ec2-metadata-token-ttl-seconds"
TOKEN_HEADER = "X-aws-ec2-metadata-token"
MIN_TTL, MAX_TTL = 1, 21600
#: Clients measure a token's life from when *they* received it and reuse it until exactly
#: then (aws-credentials-imds, Java #5764): accept it a little longer (protocol.md #10).
GRACE_SECONDS = 5
_VERSION = b"\x01"
_MAC_BYTES = 20
#: Tokens whose signature was checked, remembered with their expiry: an SDK sends one token on
#: every request of its session, and re-checking the HMAC each time was a tenth of a GET's cost.
#: Bounded (oldest forgotten first), so a flood of tokens costs at most this many entries.
VERIFIED_MEMO = 4096


def parse_ttl(raw: str | None) -> int | None:
    """The TTL header as an int in 1..21600, or None when missing or invalid."""
    if raw is None or not re.fullmatch(r"[0-9]{1,6}", raw.strip()):
        return None
    ttl = int(raw.strip())
    return ttl if MIN_TTL <= ttl <= MAX_TTL else None


class TokenIssuer:
    """Issues and verifies tokens. Nothing is stored per token: a token carries its own
    expiry and a MAC under a random per-process key, so memory does not grow with tokens
    issued (verified ones are remembered in a bounded memo) and a token from another daemon
    instance (another key) is refused."""

    def __init__(self, clock: Callable[[], float], key: bytes | None = None) -> None:
        self._clock = clock
        self._key = key if key is not None else secrets.token_bytes(32)
        self._verified: dict[str, int] = {}  # token → expiry, for genuine tokens only

    def _mac(self, payload: bytes) -> bytes:
        return hmac.new(self._key, payload, hashlib.sha256).digest()[:_MAC_BYTES]

    def issue(self, ttl: int) -> str:
        """A header-safe token valid for `ttl` seconds from now."""
        expires = int(self._clock()) + ttl
        payload = _VERSION + struct.pack(">Q", expires) + secrets.token_bytes(8)
        return base64.urlsafe_b64encode(payload + self._mac(payload)).decode().rstrip("=")

    def verify(self, token: str) -> bool:
        """True for a token this issuer made that has not expired (grace included): the
        expiry is compared with the clock on every call, memo or not."""
        expires = self._verified.get(token)
        if expires is None:
            expires = self._signed_expiry(token)
            if expires is None:
                return False
            if len(self._verified) >= VERIFIED_MEMO:
                del self._verified[next(iter(self._verified))]
            self._verified[token] = expires
        return bool(self._clock() < expires + GRACE_SECONDS)

    def _signed_expiry(self, token: str) -> int | None:
        """The expiry a token carries, if its signature is this issuer's; None otherwise."""
        try:
            raw = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4))
        except (ValueError, TypeError):
            return None
        if len(raw) != 1 + 8 + 8 + _MAC_BYTES or raw[:1] != _VERSION:
            return None
        payload, mac = raw[:-_MAC_BYTES], raw[-_MAC_BYTES:]
        if not hmac.compare_digest(mac, self._mac(payload)):
            return None
        expires: int = struct.unpack(">Q", payload[1:9])[0]
        return expires
