"""JSON for GraphQL responses and WebSocket and SSE messages.

orjson: several times faster than json.dumps for result-sized payloads (every subscription
message is encoded once per subscriber, so it counts), compact and UTF-8. What orjson
refuses (integers beyond 64 bits, which a custom scalar may return) goes through json.dumps,
so nothing that encoded before fails now.
"""

from __future__ import annotations

import json

import orjson

_OPTIONS = orjson.OPT_NON_STR_KEYS


def dumps_bytes(data: object) -> bytes:
    try:
        return orjson.dumps(data, option=_OPTIONS)
    except TypeError:
        return json.dumps(data, separators=(",", ":"), ensure_ascii=False).encode()


def dumps(data: object) -> str:
    return dumps_bytes(data).decode()
