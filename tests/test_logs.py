"""Operator logs: JSON or text lines, and library loggers that print secrets kept quiet."""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Iterator

import pytest

from imds_proxy.runtime import logs


@pytest.fixture
def restore_logging() -> Iterator[None]:
    root = logging.getLogger()
    saved = root.handlers[:], root.level, {n: logging.getLogger(n).level for n in logs.QUIET}
    yield
    root.handlers[:], level, quiet = saved
    root.setLevel(level)
    for name, lvl in quiet.items():
        logging.getLogger(name).setLevel(lvl)


def test_json_lines_carry_time_level_logger_and_message(restore_logging: None) -> None:
    out = io.StringIO()
    logs.setup("json", "INFO", out)
    logging.getLogger("imds_proxy.test").info("served credentials role=%s key=%s", "dev", "…ABCD")
    record = json.loads(out.getvalue())
    assert record["level"] == "info" and record["logger"] == "imds_proxy.test"
    assert record["message"] == "served credentials role=dev key=…ABCD"
    assert record["time"].endswith("+00:00")


def test_botocore_debug_stays_silent_even_at_debug_level(restore_logging: None) -> None:
    out = io.StringIO()
    logs.setup("text", "DEBUG", out)
    logging.getLogger("botocore.parsers").debug("Response body: b'<SecretAccessKey>s3cr3t'")
    logging.getLogger("urllib3.connectionpool").debug("https://sts.amazonaws.com:443 POST /")
    logging.getLogger("imds_proxy.x").debug("ours")
    assert "s3cr3t" not in out.getvalue()
    assert "ours" in out.getvalue()


def test_no_printable_character_is_one_escape_would_rewrite() -> None:
    # escape() returns printable text as it is (its fast path): sound only if no character
    # Python calls printable is one the escape pattern matches. Every code point is checked.
    rewritten = [hex(c) for c in range(0x110000) if chr(c).isprintable() and logs._UNSAFE.match(chr(c))]
    assert rewritten == []
    assert logs.escape("ok …") == "ok …"
    assert logs.escape("a\nb\u2028c") == "a\\nb\\u2028c"
