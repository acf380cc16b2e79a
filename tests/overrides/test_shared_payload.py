"""A `next` payload is encoded once for all the subscribers given the same result, and the
frame each of them receives is byte for byte what encoding it for each would give."""

from __future__ import annotations

import asyncio
from typing import Any

import orjson
import pytest
import strawberry
from websockets.frames import Frame, Opcode

from gqlchannels.graphql.consumers import WSConsumer
from gqlchannels.json_encoding import dumps
from gqlchannels.overrides.channels_consumers import DirectWebSocketAdapter
from gqlchannels.overrides.strawberry_protocols import encoded_payload, next_message_prefix, payload_text
from gqlchannels.overrides.uvicorn_websocket import text_frame
from tests.support.gql_clients import SEND_MESSAGE, Subscriber, graphql_post
from tests.support.server import ServerProcess


@strawberry.type
class Query:
    hello: str = "hi"

DATAS: list[Any] = [
    {"posts": {"id": "1", "text": "héllo \u2028 \"quoted\" \n", "likes": 3, "score": -0.0, "tags": ["a", "b"]}},
    {"posts": None},
    {"n": 2**63 - 1, "f": 1e300, "nested": [[{"deep": [1, 2, {"x": None}]}]]},
    {"big": 2**70},  # beyond orjson's 64 bits: left to the server's encoder (json.dumps)
    {1: "non-string key"},
]


@pytest.mark.parametrize("data", DATAS)
def test_each_subscriber_gets_the_frame_encoding_for_it_would_give(data: Any) -> None:
    for operation_id in ("1", "op-\u00e9", 'a"b'):
        shared = dumps({"id": operation_id, "type": "next", "payload": encoded_payload(data)})
        assert shared == dumps({"id": operation_id, "type": "next", "payload": {"data": data}})


def test_one_result_is_encoded_once_for_all_its_subscribers() -> None:
    data = {"posts": {"id": "1", "text": "shared"}}
    first = encoded_payload(data)
    assert isinstance(first, orjson.Fragment)
    assert encoded_payload(data) is first  # the next subscriber of this event: no encoding
    equal_but_another = {"posts": {"id": "1", "text": "shared"}}
    assert encoded_payload(equal_but_another) is not first  # by identity only, never by equality


IDS = ("1", "op-\u00e9", 'a"b', "line\u2028sep", "\\")


@pytest.mark.parametrize("data", DATAS)
def test_a_next_message_built_as_text_is_the_encoders(data: Any) -> None:
    """prefix + payload text + "}" is, byte for byte, what the server's encoder gives the
    message; a payload orjson cannot encode has no text (the message is encoded as before)."""
    text = payload_text(data)
    if text is None:
        with pytest.raises(TypeError):
            orjson.dumps({"data": data}, option=orjson.OPT_NON_STR_KEYS)
        return
    assert payload_text(data) is text  # the next subscriber of this event: no encoding
    for operation_id in IDS:
        prefix = next_message_prefix(operation_id)
        assert prefix is not None
        assert prefix + text + "}" == dumps({"id": operation_id, "type": "next", "payload": {"data": data}})


def test_an_id_orjson_cannot_encode_has_no_prefix() -> None:
    assert next_message_prefix(2**70) is None


def test_text_is_sent_directly_only_for_an_encoder_marked_as_orjsons() -> None:
    class OwnEncoding(WSConsumer):
        def encode_json(self, data: object) -> str:
            return dumps(data).upper()

    schema = strawberry.Schema(Query)
    for consumer_class, direct in ((WSConsumer, True), (OwnEncoding, False)):
        consumer = consumer_class(schema=schema)
        consumer.base_send = lambda message: None
        adapter = DirectWebSocketAdapter(consumer, consumer, consumer)
        assert (adapter.text_sender() is not None) is direct, consumer_class

    class OwnSending(DirectWebSocketAdapter):
        async def send_json(self, message: Any) -> None:
            await super().send_json({**message, "seen": True})

    consumer = WSConsumer(schema=schema)
    consumer.base_send = lambda message: None
    assert OwnSending(consumer, consumer, consumer).text_sender() is None


@pytest.mark.parametrize("length", [0, 1, 125, 126, 127, 65535, 65536, 70000])
def test_a_text_frame_written_directly_is_websockets_own(length: int) -> None:
    data = "é".encode() * (length // 2) + b"x" * (length % 2)
    assert text_frame(data) == Frame(Opcode.TEXT, data).serialize(mask=False, extensions=[])


@pytest.mark.parametrize("message", ["short", "m" * 200, "long " * 14000])
async def test_next_messages_arrive_as_the_encoder_would_write_them(memory_server: ServerProcess,
                                                                   message: str) -> None:
    """Over a real socket (no compression: the frame is written directly), an operation id
    that needs escaping, and frames of each length encoding."""
    room = f"direct-{len(message)}"
    subscriber = await Subscriber.open(memory_server.ws_url)
    subscriber.op_id = 'op "\u00e9\u2028\\'
    try:
        await subscriber.join_room(room)
        graphql_post(memory_server.url, SEND_MESSAGE, {"room": room, "msg": message})
        raw = await asyncio.wait_for(subscriber.ws.recv(), 10)
        assert raw == dumps({"id": subscriber.op_id, "type": "next",
                             "payload": {"data": {"joinChatRooms": {"id": room, "message": message}}}})
    finally:
        await subscriber.close()
