"""The audit trail off the event loop: audit records go to a queue, and a thread writes them with
the daemon's own log handlers (text, or JSON objects with "event": "credentials_served")."""

from __future__ import annotations

import contextlib
import logging
import logging.handlers
import queue
from collections.abc import Iterator

from imds_proxy.server.observe import AUDIT_LOGGER


@contextlib.contextmanager
def queued() -> Iterator[None]:
    """While the block runs, audit records cost the handler one queue put; the root logger's
    handlers (set up by logs.setup) write them from a thread. Everything queued is written
    before the block ends."""
    audit = logging.getLogger(AUDIT_LOGGER)
    records: queue.SimpleQueue[logging.LogRecord] = queue.SimpleQueue()
    handlers = logging.getLogger().handlers
    listener = logging.handlers.QueueListener(records, *handlers, respect_handler_level=True)
    handler = logging.handlers.QueueHandler(records)
    audit.addHandler(handler)
    audit.propagate = False
    listener.start()
    try:
        yield
    finally:
        audit.removeHandler(handler)
        audit.propagate = True
        listener.stop()
