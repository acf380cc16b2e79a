"""aiormq's log records that would repeat what the link already says.

aiormq 7 logs every lost connection as a warning with a traceback ("Cancelling cause reader
exited abnormally"); aiormq 6 logged the same at debug, without one. The link reports each
loss in one line with its cause, so that record is kept at debug and without the traceback
under either version: an outage is one line per change of state, not a traceback per loss.
"""

from __future__ import annotations

import logging

READER_EXITED = "Cancelling cause reader exited abnormally"


class ReaderExitAtDebug(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        if record.msg == READER_EXITED:
            # The handlers compare the record's own level, so lowering it here hides it from
            # every handler not set to debug, and shows it, briefly, to those that are.
            record.levelno, record.levelname = logging.DEBUG, logging.getLevelName(logging.DEBUG)
            record.exc_info = record.exc_text = None
        return True


def install() -> None:
    aiormq_connection = logging.getLogger("aiormq.connection")
    if not any(isinstance(f, ReaderExitAtDebug) for f in aiormq_connection.filters):
        aiormq_connection.addFilter(ReaderExitAtDebug())
