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


def loads(data: str | bytes) -> object:
    long_digits = _LONG_DIGITS if isinstance(data, str) else _LONG_DIGITS_BYTES
    if long_digits.search(data) is None:  # type: ignore[arg-type]
        try:
            return orjson.loads(data)
        except orjson.JSONDecodeError:
            pass
    return json.loads(data)
