"""IMDSv2 session tokens: stateless, signed, expiring by an injected clock."""

from __future__ import annotations

import tracemalloc

from imds_proxy.engine.tokens import GRACE_SECONDS, VERIFIED_MEMO, TokenIssuer, parse_ttl

from fakes import FakeClock


def test_fresh_token_is_accepted() -> None:
    clock = FakeClock()
    issuer = TokenIssuer(clock.seconds)
    assert issuer.verify(issuer.issue(60))


def test_token_is_accepted_within_grace_after_its_ttl() -> None:
    clock = FakeClock()
    issuer = TokenIssuer(clock.seconds)
    token = issuer.issue(60)
    clock.advance(seconds=60 + GRACE_SECONDS - 1)
    assert issuer.verify(token)


def test_expired_token_is_refused() -> None:
    clock = FakeClock()
    issuer = TokenIssuer(clock.seconds)
    token = issuer.issue(60)
    clock.advance(seconds=60 + GRACE_SECONDS)
    assert not issuer.verify(token)


def test_a_token_verified_before_is_still_refused_once_expired() -> None:
    clock = FakeClock()
    issuer = TokenIssuer(clock.seconds)
    token = issuer.issue(60)
    assert issuer.verify(token)
    clock.advance(seconds=60 + GRACE_SECONDS - 1)
    assert issuer.verify(token)
    clock.advance(seconds=1)
    assert not issuer.verify(token)


def test_memo_of_verified_tokens_stays_bounded_and_forgets_nothing_it_needs() -> None:
    issuer = TokenIssuer(FakeClock().seconds)
    first = issuer.issue(60)
    for _ in range(VERIFIED_MEMO + 100):
        assert issuer.verify(issuer.issue(60))
    assert len(issuer._verified) <= VERIFIED_MEMO
    assert issuer.verify(first)  # forgotten by the memo, verified again from its signature


def test_token_from_another_daemon_instance_is_refused() -> None:
    clock = FakeClock()
    assert not TokenIssuer(clock.seconds).verify(TokenIssuer(clock.seconds).issue(60))


def test_forged_token_is_refused() -> None:
    clock = FakeClock()
    issuer = TokenIssuer(clock.seconds)
    token = issuer.issue(60)
    flipped = token[:-3] + ("A" if token[-3] != "A" else "B") + token[-2:]
    for forged in (flipped, "", "x", "AQAAAA", token + "A", "é" * 20, token[:-1]):
        assert not issuer.verify(forged), forged


def test_extending_the_expiry_breaks_the_signature() -> None:
    import base64
    import struct

    clock = FakeClock()
    issuer = TokenIssuer(clock.seconds)
    raw = bytearray(base64.urlsafe_b64decode(issuer.issue(1) + "=="))
    raw[1:9] = struct.pack(">Q", int(clock.seconds()) + 21600)
    forged = base64.urlsafe_b64encode(bytes(raw)).decode().rstrip("=")
    assert not issuer.verify(forged)


def test_tokens_are_header_safe_and_distinct() -> None:
    issuer = TokenIssuer(FakeClock().seconds)
    tokens = {issuer.issue(21600) for _ in range(100)}
    assert len(tokens) == 100
    assert all(t.isascii() and t.replace("-", "").replace("_", "").isalnum() for t in tokens)


def test_memory_does_not_grow_with_tokens_issued() -> None:
    issuer = TokenIssuer(FakeClock().seconds)
    tracemalloc.start()
    for _ in range(1000):
        issuer.issue(60)
    before, _ = tracemalloc.get_traced_memory()
    for _ in range(20000):
        issuer.issue(60)
    after, _ = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    assert after - before < 20_000  # 20000 stored tokens would take over a megabyte


def test_ttl_header_parsing() -> None:
    assert parse_ttl("1") == 1
    assert parse_ttl("21600") == 21600
    assert parse_ttl(" 300 ") == 300
    for bad in (None, "", "0", "-1", "21601", "1.5", "abc", "1e3", "²", "٣", "0000001000000"):
        assert parse_ttl(bad) is None, bad
