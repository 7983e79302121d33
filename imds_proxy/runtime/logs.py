"""Operator logs: one line per event, text or JSON, and never a library's secret-bearing debug output."""

from __future__ import annotations

import json
import logging
import sys
from datetime import UTC, datetime
from typing import Literal, TextIO

#: botocore's DEBUG output includes whole STS responses (secrets and session tokens);
#: these loggers stay at WARNING whatever level the operator picks.
QUIET = ("botocore", "boto3", "urllib3", "s3transfer", "werkzeug", "aiohttp.access")


class JsonFormatter(logging.Formatter):
    """One JSON object per line: time, level, logger, message (and error type if any)."""

    def format(self, record: logging.LogRecord) -> str:
        doc = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        if record.exc_info and record.exc_info[0] is not None:
            doc["error"] = record.exc_info[0].__name__
        # An audit record (runtime.audit): its fields, "event": "credentials_served" first among them.
        doc.update(getattr(record, "audit", None) or {})
        return json.dumps(doc, ensure_ascii=False)


def setup(fmt: Literal["text", "json"] = "text", level: str = "INFO", stream: TextIO | None = None) -> None:
    """Configure the root logger for the daemon (stderr by default)."""
    handler = logging.StreamHandler(stream or sys.stderr)
    if fmt == "json":
        handler.setFormatter(JsonFormatter())
    else:
        handler.setFormatter(
            logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s", "%Y-%m-%dT%H:%M:%S")
        )
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    for name in QUIET:
        logging.getLogger(name).setLevel(logging.WARNING)
