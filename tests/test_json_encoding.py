"""Responses are encoded and requests decoded with orjson; what orjson refuses still encodes
and decodes as before, and what is malformed fails as before."""

from __future__ import annotations

import json
import math

import pytest

from gqlchannels.json_encoding import dumps, dumps_bytes, loads


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


@pytest.mark.parametrize("text", [
    '{"type": "subscribe", "id": "1", "payload": {"query": "{ a }", "variables": {"n": 1.5}}}',
    '{"big": 12345678901234567890123, "neg": -9999999999999999999}',  # beyond 64 bits: orjson makes floats
    '{"lone": "\\ud800"}',  # a lone surrogate escape: orjson refuses, json decodes
    '[1, "héllo ✓", null, true]',
])
def test_decodes_what_json_decodes(text: str) -> None:
    for data in (text, text.encode()):
        assert repr(loads(data)) == repr(json.loads(data))  # repr: 2**70 == float(2**70), but not as text


def test_decodes_nan_as_json_does() -> None:
    assert math.isnan(loads('{"x": NaN}')["x"])  # type: ignore[index]


@pytest.mark.parametrize("data", ["{not json", '{"a": 1} trailing', "", b"\xff\xfe"])
def test_malformed_fails_as_with_json(data: str | bytes) -> None:
    with pytest.raises(Exception) as ours:
        loads(data)
    with pytest.raises(Exception) as theirs:
        json.loads(data)
    assert isinstance(ours.value, type(theirs.value))  # JSONDecodeError, or UnicodeDecodeError for bytes


@pytest.mark.parametrize("data", [
    "[" * 1025 + "]" * 1025,  # past orjson's 1,024 levels
    "[" * 1100 + "12345678901234567890" + "]" * 1100,  # long digits: decoded by json.loads alone
    b'{"a":' * 100_000 + b"1" + b"}" * 100_000,
])
def test_too_deep_is_malformed_json_not_a_recursion_error(data: str | bytes) -> None:
    with pytest.raises(json.JSONDecodeError, match="^JSON nested too deeply$"):
        loads(data)
