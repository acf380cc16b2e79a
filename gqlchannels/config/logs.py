"""Logging: uvicorn's setup with our loggers on its handler, as JSON or as text lines that a
client cannot break.

`--log-format json` makes each line one JSON object (`time`, `level`, `logger`, `message`),
with nothing else on the stream.

Text lines (`--log-format text`) carry what clients send: operation names, paths, GraphQL
errors quoting a document, exceptions quoting input. One with a line break in it would start
a new line that reads like a record of its own (`ERROR:    ...`), and an escape sequence
would drive the operator's terminal. So every control character (C0 and C1, DEL, and the Unicode line and
paragraph separators) in a record's message, in its arguments (uvicorn's access lines are
built from them) and in the text of a logged exception is written as an escape: `\\n`,
`\\r`, `\\t`, `\\x1b`, `\\u2028`. A traceback keeps its own lines; only what an exception
says of itself is escaped. Colours, which these formatters add themselves, stay. (JSON
escapes control characters itself.)
"""

from __future__ import annotations

import copy
import logging
import re
import traceback
from types import TracebackType
from typing import Any

from pythonjsonlogger.core import RESERVED_ATTRS
from uvicorn.config import LOGGING_CONFIG
from uvicorn.logging import AccessFormatter, DefaultFormatter

from ..overrides.stdlib_traceback import escape_exception_texts

JSON_FORMAT = "%(asctime)s %(levelname)s %(name)s %(message)s"

_CONTROL = re.compile("[\x00-\x1f\x7f-\x9f\u2028\u2029]")
_NAMED = {"\n": "\\n", "\r": "\\r", "\t": "\\t"}


def _escape_one(match: re.Match[str]) -> str:
    char = match.group()
    return _NAMED.get(char) or (f"\\x{ord(char):02x}" if ord(char) < 0x100 else f"\\u{ord(char):04x}")


def escape_control_characters(text: str) -> str:
    """`text` on one line, every control character written as a backslash escape."""
    return text if _CONTROL.search(text) is None else _CONTROL.sub(_escape_one, text)


def _escaped_argument(value: Any) -> Any:
    return escape_control_characters(value) if isinstance(value, str) else value


class _EscapesClientText(logging.Formatter):
    def formatMessage(self, record: logging.LogRecord) -> str:
        record = copy.copy(record)
        # uvicorn ends one of its messages with a line break, which would show as a trailing "\n".
        record.message = escape_control_characters(record.message.rstrip("\r\n"))
        if isinstance(record.args, tuple):
            record.args = tuple(_escaped_argument(arg) for arg in record.args)
        elif isinstance(record.args, dict):
            record.args = {key: _escaped_argument(value) for key, value in record.args.items()}
        return super().formatMessage(record)

    def formatException(self, ei: tuple[type[BaseException], BaseException, TracebackType | None]
                        | tuple[None, None, None]) -> str:
        if ei[1] is None:
            return super().formatException(ei)
        report = traceback.TracebackException(type(ei[1]), ei[1], ei[2])
        escape_exception_texts(report, escape_control_characters)
        return "".join(report.format()).rstrip("\n")


class TextFormatter(_EscapesClientText, DefaultFormatter):
    """uvicorn's default formatter (`INFO:     message`), escaping control characters."""


class AccessTextFormatter(_EscapesClientText, AccessFormatter):
    """uvicorn's access line formatter, escaping control characters."""


def log_config(level: str, log_format: str = "text") -> dict[str, Any]:
    """uvicorn's logging setup, plus our own loggers on the same handler; as escaped text or JSON."""
    config = copy.deepcopy(LOGGING_CONFIG)
    uvicorn_level = "DEBUG" if level == "trace" else level.upper()
    # strawberry.execution logs each GraphQL error; it goes through the same handler and format.
    for name in ("gqlchannels", "channels_rabbitmq", "strawberry"):
        config["loggers"][name] = {"handlers": ["default"], "level": uvicorn_level, "propagate": False}
    if log_format == "text":
        # The same lines as uvicorn's, with control characters from clients escaped (the formatters above).
        config["formatters"]["default"]["()"] = "gqlchannels.config.logs.TextFormatter"
        config["formatters"]["access"]["()"] = "gqlchannels.config.logs.AccessTextFormatter"
    # aiormq logs each failed attempt and each close at ERROR, some with an empty traceback
    # ("NoneType: None"); the layer says the same once per change of state, in words. Their
    # own lines are for debugging.
    library_level = "DEBUG" if level in ("debug", "trace") else "CRITICAL"
    for name in ("aiormq", "pamqp"):
        config["loggers"][name] = {"handlers": ["default"], "level": library_level, "propagate": False}
    # Anything else (asyncio's own reports, a library's warning) in the same format, not
    # Python's bare last-resort lines.
    config["root"] = {"handlers": ["default"], "level": "WARNING"}
    if log_format == "json":
        # One JSON object per line: uvicorn's access lines carry client, method, path and
        # status as fields of their message; every other event is its message. uvicorn's
        # `color_message` (the message again, with terminal colour codes) is left out.
        for formatter in config["formatters"].values():
            formatter.clear()
            formatter.update({"()": "pythonjsonlogger.json.JsonFormatter", "fmt": JSON_FORMAT,
                              "rename_fields": {"asctime": "time", "levelname": "level", "name": "logger"},
                              "reserved_attrs": [*RESERVED_ATTRS, "color_message"]})
    return config
