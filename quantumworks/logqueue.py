"""The console log handler, with its writes on a thread of their own.

A `StreamHandler` writes each line to stderr on the thread that logged it:
under load that is the event loop, one syscall per connect line (7.8 % of
the loop in the W1 profile, issue 18). Here the record is formatted and
filtered where it was logged (so `redact_tokens` still sees every line) and
queued; a `QueueListener` thread writes it. Lines still queued at exit are
written by the listener's stop (atexit).
"""

from __future__ import annotations

import atexit
import logging
import queue
import sys
from logging.handlers import QueueHandler, QueueListener


class QueuedConsoleHandler(QueueHandler):
    def __init__(self) -> None:
        records: queue.SimpleQueue[logging.LogRecord] = queue.SimpleQueue()
        super().__init__(records)
        stream = logging.StreamHandler(sys.stderr)
        stream.setFormatter(logging.Formatter("%(message)s"))  # formatted by prepare()
        self.listener = QueueListener(records, stream)
        self.listener.start()
        atexit.register(self.listener.stop)
