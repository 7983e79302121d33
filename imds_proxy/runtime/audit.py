"""The audit trail off the event loop: audit records go to a queue, and a thread writes them with
the daemon's own log handlers (text, or JSON objects with "event": "credentials_served")."""

from __future__ import annotations

import contextlib
import logging
import logging.handlers
import queue
import threading
from collections.abc import Iterator, Sequence

from imds_proxy.server.observe import AUDIT_LOGGER

#: The writer wakes this often and writes what queued up meanwhile: a queue put that wakes no
#: thread costs a request almost nothing (waking the writer per record cost a context switch
#: on the daemon's core each time), and a line is late by at most this. Short, so each batch
#: is small: a long one holds the interpreter lock and delays the answers behind it (p99).
_PERIOD = 0.005


class _AsMade(logging.handlers.QueueHandler):
    """Queues the record itself: an audit record's message is final text with no arguments and
    no traceback, so QueueHandler's format-and-copy on the event loop would buy nothing."""

    def prepare(self, record: logging.LogRecord) -> logging.LogRecord:
        return record


def _emit(handler: logging.Handler, records: Sequence[logging.LogRecord]) -> None:
    """Hand `records` to `handler`; a stream handler gets them as one write and one flush."""
    kept = [r for r in records if r.levelno >= handler.level and handler.filter(r)]
    if not kept:
        return
    if not isinstance(handler, logging.StreamHandler):
        for record in kept:
            handler.handle(record)
        return
    with handler.lock or contextlib.nullcontext():
        try:
            handler.stream.write("".join(handler.format(r) + handler.terminator for r in kept))
            handler.flush()
        except Exception:  # logging's own rule: a failing log write must not stop the daemon
            handler.handleError(kept[0])


def _write(
    records: queue.SimpleQueue[logging.LogRecord], handlers: Sequence[logging.Handler], stop: threading.Event
) -> None:
    """The writer thread: every _PERIOD, whatever queued up is one batch; once `stop` is set,
    the last batch."""
    while True:
        stopping = stop.wait(_PERIOD)
        batch = []
        while not records.empty():
            batch.append(records.get())
        if batch:
            for handler in handlers:
                _emit(handler, batch)
        if stopping:
            return


@contextlib.contextmanager
def queued() -> Iterator[None]:
    """While the block runs, audit records cost the handler one queue put; the root logger's
    handlers (set up by logs.setup) write them from a thread. Everything queued is written
    before the block ends."""
    audit = logging.getLogger(AUDIT_LOGGER)
    records: queue.SimpleQueue[logging.LogRecord] = queue.SimpleQueue()
    stop = threading.Event()
    handlers = tuple(logging.getLogger().handlers)
    writer = threading.Thread(target=_write, args=(records, handlers, stop), name="audit writer", daemon=True)
    handler = _AsMade(records)
    audit.addHandler(handler)
    audit.propagate = False
    writer.start()
    try:
        yield
    finally:
        audit.removeHandler(handler)
        audit.propagate = True
        stop.set()
        writer.join()
