"""What an exception says of itself, escaped in a logged traceback (a fix).

A traceback's lines are the formatter's own, but an exception's message may carry what a
client sent (a line break, a terminal escape). `escape_exception_texts(report, escape)`
rewrites what each exception of a TracebackException's chain says of itself (the `_str`
that format_exception_only prints after "Type: "), so a logged traceback keeps its lines and
no client text starts one. With another Python, exception texts are logged as they are.
"""

from __future__ import annotations

import traceback
from collections.abc import Callable

from . import Kind, override

GATE = override(
    "python-traceback-text", Kind.FIX, {"python": ">=3.11,<3.14"},
    stock="exception messages in logged tracebacks as they are (a line break in one starts a line)",
)


def escape_exception_texts(report: traceback.TracebackException, escape: Callable[[str], str]) -> None:
    """Apply `escape` to what each exception in the report's chain says of itself."""
    if not GATE.active:
        return
    pending, seen = [report], set()
    while pending:
        current = pending.pop()
        if id(current) in seen:
            continue
        seen.add(id(current))
        text = getattr(current, "_str", None)
        if isinstance(text, str):
            current._str = escape(text)  # type: ignore[attr-defined]
        pending.extend(linked for linked in (current.__cause__, current.__context__) if linked is not None)
        pending.extend(getattr(current, "exceptions", None) or ())  # an exception group's members
