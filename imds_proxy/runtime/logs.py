"""Operator logs: one line per event, text or JSON, and the one redaction point everything logged
passes — no library's secret-bearing output, no raw request bytes, no forged lines."""

from __future__ import annotations

import json
import logging
import re
import sys
from datetime import UTC, datetime
from typing import Literal, TextIO

from aiohttp.http_exceptions import HttpProcessingError

#: botocore's DEBUG output includes whole STS responses (secrets and session tokens);
#: these loggers stay at WARNING whatever level the operator picks.
QUIET = ("botocore", "boto3", "urllib3", "s3transfer", "werkzeug", "aiohttp.access")
#: aiohttp logs a request it cannot parse with the raw header line (a token in it, whole) and
#: a traceback; these loggers' records are replaced by one line of ours (FrameworkErrors).
FRAMEWORK = ("aiohttp.server", "aiohttp.web_protocol")

#: What could end or fake a line, or hide text on a terminal: C0/C1 controls, line and
#: paragraph separators, bidi and zero-width format characters, lone surrogates (undecodable
#: request bytes: they would also make the stream's write fail, and logging print the record).
_UNSAFE = re.compile("[\x00-\x1f\x7f-\x9f\u061c\u200b-\u200f\u2028-\u202e\u2060-\u206f\ufeff\ud800-\udfff]")


def escape(text: str) -> str:
    """`text` with every unsafe character written as a Python escape (`\\n`, `\\x1b`, `\\u2028`)."""
    if text.isprintable():  # no control, format, separator or surrogate character: nothing to do
        return text
    return _UNSAFE.sub(lambda m: m.group().encode("unicode_escape", "backslashreplace").decode("ascii"), text)


class TextFormatter(logging.Formatter):
    """`time level logger: message`, the message escaped: one record, one line (a traceback,
    when there is one, follows on lines of its own)."""

    _second: tuple[int, str] = (-1, "")

    def formatMessage(self, record: logging.LogRecord) -> str:
        record.message = escape(record.message)
        return super().formatMessage(record)

    def formatTime(self, record: logging.LogRecord, datefmt: str | None = None) -> str:
        """As logging's, worked out once per second (the formats here show no fraction of one)."""
        if datefmt is None or "%f" in datefmt:
            return super().formatTime(record, datefmt)
        second = int(record.created)
        if self._second[0] != second:
            self._second = (second, super().formatTime(record, datefmt))
        return self._second[1]

    def formatException(self, ei: logging._SysExcInfoType) -> str:
        # Indented, so no line of an exception's text can pass for a record of its own.
        return "\n".join("    " + escape(line) for line in super().formatException(ei).splitlines())


class JsonFormatter(logging.Formatter):
    """One JSON object per line: time, level, logger, message (and error type if any)."""

    def format(self, record: logging.LogRecord) -> str:
        doc = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": escape(record.getMessage()),
        }
        if record.exc_info and record.exc_info[0] is not None:
            doc["error"] = record.exc_info[0].__name__
        # An audit record (server/observe.py): its fields, "event": "credentials_served" first among them.
        audit = getattr(record, "audit", None)
        if audit is not None:
            doc.update(audit.fields())
        return json.dumps(doc, ensure_ascii=False)


class FrameworkErrors(logging.Filter):
    """Drops aiohttp's own error records and logs one line of ours instead: the client and the
    kind of error, never the exception's text (for a parse error, the raw header line)."""

    _log = logging.getLogger("imds_proxy.protocol")

    def filter(self, record: logging.LogRecord) -> bool:
        exc = record.exc_info[1] if record.exc_info else None
        client = record.args[0] if isinstance(record.args, tuple) and record.args else "?"
        kind = type(exc).__name__ if exc is not None else "error"
        if exc is None or isinstance(exc, HttpProcessingError):
            status = getattr(exc, "code", 400)
            self._log.info("refused malformed request status=%s client=%s: %s", status, client, kind)
        else:  # a bug of ours behind a 500: its kind, and where (no request data in a traceback)
            self._log.error("error handling a request client=%s: %s", client, kind, exc_info=record.exc_info)
        return False


_FILTER = FrameworkErrors()


def redact_framework_errors() -> None:
    """Route aiohttp's error logging through FrameworkErrors (idempotent)."""
    for name in FRAMEWORK:
        logger = logging.getLogger(name)
        if _FILTER not in logger.filters:
            logger.addFilter(_FILTER)


def setup(fmt: Literal["text", "json"] = "text", level: str = "INFO", stream: TextIO | None = None) -> None:
    """Configure the root logger for the daemon (stderr by default)."""
    handler = logging.StreamHandler(stream or sys.stderr)
    if fmt == "json":
        handler.setFormatter(JsonFormatter())
    else:
        line = "%(asctime)s %(levelname)s %(name)s: %(message)s"
        handler.setFormatter(TextFormatter(line, "%Y-%m-%dT%H:%M:%S"))
    # No format shows a record's thread or process: not worked out per record (the audit line's cost).
    logging.logThreads = logging.logProcesses = logging.logMultiprocessing = False
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    for name in QUIET:
        logging.getLogger(name).setLevel(logging.WARNING)
    redact_framework_errors()
