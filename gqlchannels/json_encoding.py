"""JSON for GraphQL responses and WebSocket and SSE messages.

orjson: several times faster than json.dumps for result-sized payloads (every subscription
message is encoded once per subscriber, so it counts), compact and UTF-8. What orjson
refuses (integers beyond 64 bits, which a custom scalar may return) goes through json.dumps,
so nothing that encoded before fails now. Decoding is the same: orjson first, and json.loads
for what orjson refuses (NaN, lone surrogates) or would change (it turns integers beyond 64
bits into floats, so a document with a run of 19 or more digits goes to json.loads), so
every document decodes exactly as before and a malformed one raises json.JSONDecodeError as
before. orjson also shares the key strings of small objects between documents: a
subscription's decoded subscribe message, kept while it runs, is about half the size.

A document nested deeper than 1,024 levels (where orjson stops; json.loads stops at the
interpreter's recursion limit on Python 3.11, far deeper on 3.12 and later) raises
JSONTooDeep, a JSONDecodeError, on either path, so every caller refuses it as malformed input
instead of failing later with RecursionError.
"""

from __future__ import annotations

import json
import re

import orjson

_OPTIONS = orjson.OPT_NON_STR_KEYS


def dumps_bytes(data: object) -> bytes:
    try:
        return orjson.dumps(data, option=_OPTIONS)
    except TypeError:
        return json.dumps(data, separators=(",", ":"), ensure_ascii=False).encode()


def dumps(data: object) -> str:
    return dumps_bytes(data).decode()


_LONG_DIGITS = re.compile(r"\d{19,}")
_LONG_DIGITS_BYTES = re.compile(rb"\d{19,}")


class JSONTooDeep(json.JSONDecodeError):
    """A JSON document nested too deeply to decode."""

    def __init__(self) -> None:
        super().__init__("JSON nested too deeply", "", 0)

    def __str__(self) -> str:
        return self.msg  # without JSONDecodeError's position, which says nothing here


_MAX_DEPTH = 1024  # orjson's own limit, held on the json.loads path too


def loads(data: str | bytes) -> object:
    long_digits = _LONG_DIGITS if isinstance(data, str) else _LONG_DIGITS_BYTES
    if long_digits.search(data) is None:  # type: ignore[arg-type]
        try:
            return orjson.loads(data)
        except orjson.JSONDecodeError:
            pass  # json.loads decides, with the same depth limit below
    try:
        value = json.loads(data)
    except RecursionError:
        # Raised where the recursion stopped, so no frame of it is kept by the new exception.
        raise JSONTooDeep() from None
    # Python 3.12+ decodes far deeper than orjson before its recursion limit, and callers
    # that walk the value recursively (variables coercion, our own checks) would not.
    if isinstance(value, (dict, list)) and _deeper_than(value, _MAX_DEPTH):
        raise JSONTooDeep()
    return value


def _deeper_than(value: dict | list, limit: int) -> bool:
    stack: list[tuple[object, int]] = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        if depth > limit:
            return True
        children = item.values() if isinstance(item, dict) else item
        stack.extend((child, depth + 1) for child in children if isinstance(child, (dict, list)))  # type: ignore[union-attr]
    return False
