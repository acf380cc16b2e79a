"""Responses are encoded with orjson, and what orjson refuses still encodes as before."""

from __future__ import annotations

import json

import pytest

from gqlchannels.json_encoding import dumps, dumps_bytes


@pytest.mark.parametrize("value", [
    {"data": {"big": 2**70}},  # a custom scalar's integer beyond 64 bits: orjson refuses it
    {"data": {"text": "héllo ✓", "list": [1, 2.5, None, True]}},
    {"data": {1: "non-string key"}},
])
def test_encodes_what_json_encodes(value: object) -> None:
    assert json.loads(dumps(value)) == json.loads(json.dumps(value))
    assert dumps_bytes(value).decode() == dumps(value)


def test_unencodable_still_raises_type_error() -> None:
    with pytest.raises(TypeError):
        dumps({"data": {"a": object()}})
