"""The spans of one process, read from the SDK's in-memory exporter: the app served in this
process by gqlchannels.testing with otel=True (the real application over ASGI, with its
in-process layer), and the RabbitMQ layer's AMQP headers against the real broker."""

from __future__ import annotations

import asyncio
import types
import uuid
from pathlib import Path

import aiormq
import pytest
from opentelemetry import trace
from opentelemetry.trace import SpanKind

import gqlchannels
from gqlchannels import overrides
from gqlchannels.events.publish import publish_through
from gqlchannels.layers.amqp import RabbitMQChannelLayer
from gqlchannels.layers.amqp.wire import encode
from gqlchannels.telemetry import TracedMessage
from gqlchannels.testing import GraphQLTestClient
from tests.support.channels_rabbitmq_peer import ChannelsRabbitmqPeer, peer_python

CHAT = "gqlchannels.examples.chat:schema"
JOIN = "subscription Join($rooms: [ChatRoom!]!) { joinChatRooms(rooms: $rooms) { id message } }"
SEND = "mutation Send($room: ChatRoom!, $message: String!) { sendChatMessage(room: $room, message: $message) }"
TRACE_ID = "4bf92f3577b34da6a3ce929d0e0e4736"
TRACEPARENT = f"00-{TRACE_ID}-00f067aa0ba902b7-01"


def by_name(spans, name: str):
    found = [span for span in spans.get_finished_spans() if span.name == name]
    assert found, f"no span {name!r} among {[s.name for s in spans.get_finished_spans()]}"
    return found


def hex_trace(span) -> str:
    return format(span.context.trace_id, "032x")


async def test_an_http_request_continues_the_callers_trace(spans) -> None:
    async with GraphQLTestClient(CHAT, otel=True) as client:
        query = "query Hello { hello }"
        result = await client.execute(query, headers={"traceparent": TRACEPARENT})
        assert result.data == {"hello": "Hello, world!"}
        again = await client.execute(query, headers={"traceparent": TRACEPARENT})
        assert again.data == result.data

    servers = by_name(spans, "POST /graphql")
    assert len(servers) == 2
    server = servers[0]
    assert server.kind == SpanKind.SERVER
    assert hex_trace(server) == TRACE_ID and format(server.parent.span_id, "016x") == "00f067aa0ba902b7"
    assert server.attributes["http.request.method"] == "POST"
    assert server.attributes["http.route"] == "/graphql"
    assert server.attributes["http.response.status_code"] == 200

    operations = by_name(spans, "query Hello")
    assert len(operations) == 2
    operation = operations[0]
    assert operation.parent.span_id == server.context.span_id
    assert operation.attributes["graphql.operation.name"] == "Hello"
    assert operation.attributes["graphql.operation.type"] == "query"
    assert operation.attributes["graphql.document.hash"].startswith("sha256:")
    assert operations[1].attributes["graphql.document.hash"] == operation.attributes["graphql.document.hash"]
    # Parsed and validated once: the second request found the document in the cache.
    preparing = [s for s in spans.get_finished_spans() if s.name == "GraphQL parse and validate"
                 and s.context.trace_id == server.context.trace_id]
    assert len(preparing) == 1 and preparing[0].parent.span_id == operation.context.span_id


async def test_a_delivery_is_in_the_trace_of_the_mutation_that_published_it(spans) -> None:
    room = f"r{uuid.uuid4().hex[:8]}"
    async with GraphQLTestClient(CHAT, otel=True) as client:
        async with client.subscribe(JOIN, {"rooms": [{"id": room}]}, operation_name="Join") as stream:
            assert (await stream.next()).data["joinChatRooms"]["message"] == "Someone just joined the room!"
            sent = await client.execute(SEND, {"room": {"id": room}, "message": "hi"},
                                        headers={"traceparent": TRACEPARENT})
            assert sent.data == {"sendChatMessage": True}
            # What the subscription receives is the message itself.
            assert (await stream.next()).data == {"joinChatRooms": {"id": room, "message": "hi"}}

    group = f"chat-room-{room}"
    mutation = by_name(spans, "mutation Send")[0]
    assert hex_trace(mutation) == TRACE_ID
    producers = [s for s in by_name(spans, f"send {group}") if s.context.trace_id == mutation.context.trace_id]
    assert len(producers) == 1
    producer = producers[0]
    assert producer.kind == SpanKind.PRODUCER and producer.parent.span_id == mutation.context.span_id
    assert producer.attributes["messaging.system"] == "gqlchannels.inprocess"
    assert producer.attributes["messaging.destination.name"] == group

    subscription = by_name(spans, "subscription Join")[0]
    websocket = by_name(spans, "graphql-transport-ws subscribe")[0]
    assert websocket.kind == SpanKind.SERVER and subscription.parent.span_id == websocket.context.span_id
    assert websocket.attributes["graphql.operation.name"] == "Join"

    deliveries = by_name(spans, f"process {group}")
    # The join notice was published by the subscription itself, inside its own trace; the
    # mutation's message is delivered in the mutation's trace, linked to the subscription.
    delivery = next(d for d in deliveries if d.parent is not None and d.parent.span_id == producer.context.span_id)
    assert delivery.kind == SpanKind.CONSUMER and hex_trace(delivery) == TRACE_ID
    assert delivery.attributes["messaging.operation.type"] == "process"
    assert [link.context.span_id for link in delivery.links] == [subscription.context.span_id]


async def test_a_publish_inside_a_traced_job_continues_its_trace(spans) -> None:
    room = f"r{uuid.uuid4().hex[:8]}"
    tracer = trace.get_tracer("tests")
    async with GraphQLTestClient(CHAT, otel=True) as client:
        async with client.subscribe(JOIN, {"rooms": [{"id": room}]}) as stream:
            await stream.next()
            with tracer.start_as_current_span("nightly report") as job:
                await gqlchannels.apublish(f"chat-room-{room}", {"type": "chat.message", "room_id": room,
                                                                 "message": "report ready"})
            assert (await stream.next()).data["joinChatRooms"]["message"] == "report ready"

    producer = by_name(spans, f"send chat-room-{room}")[-1]
    assert producer.parent.span_id == job.get_span_context().span_id
    delivery = next(d for d in by_name(spans, f"process chat-room-{room}")
                    if d.parent is not None and d.parent.span_id == producer.context.span_id)
    assert delivery.context.trace_id == job.get_span_context().trace_id


async def test_otel_off_makes_no_spans(spans) -> None:
    async with GraphQLTestClient(CHAT, otel=False) as client:
        assert (await client.execute("{ hello }")).data == {"hello": "Hello, world!"}
    assert spans.get_finished_spans() == ()


def test_a_traced_message_is_encoded_as_the_message_itself() -> None:
    message = {"type": "chat.message", "text": "hi"}
    traced = TracedMessage(message, {"traceparent": TRACEPARENT}, "room")
    assert traced == message
    assert encode(traced, group="room") == encode(message, group="room")


async def test_the_trace_context_travels_in_amqp_headers_and_the_body_is_unchanged(spans, amqp_url: str) -> None:
    """A traced publish through the RabbitMQ layer, read raw off the broker (as a process on
    channels-rabbitmq reads it): the body is the wire format's, the context in the headers."""
    from gqlchannels import telemetry

    telemetry.enable(configure_sdk=False)
    group = f"otel-{uuid.uuid4().hex[:8]}"
    layer = RabbitMQChannelLayer(amqp_url)
    connection = await aiormq.connect(amqp_url)
    try:
        channel = await connection.channel()
        declared = await channel.queue_declare(exclusive=True)
        await channel.exchange_declare("groups", exchange_type="direct")
        await channel.queue_bind(declared.queue, "groups", routing_key=group)
        received: asyncio.Queue = asyncio.Queue()
        await channel.basic_consume(declared.queue, received.put, no_ack=True)
        message = {"type": "chat.message", "text": "hi"}
        with trace.get_tracer("tests").start_as_current_span("job") as job:
            await publish_through(layer, group, message)
        delivered = await asyncio.wait_for(received.get(), 10)
        assert delivered.body == encode(message, group=group)
        headers = delivered.header.properties.headers
        assert headers["traceparent"].split("-")[1] == format(job.get_span_context().trace_id, "032x")
        producer = by_name(spans, f"send {group}")[0]
        assert producer.attributes["messaging.system"] == "rabbitmq"
        assert producer.attributes["server.port"] == 5672
    finally:
        await connection.close()
        await layer.close()


async def test_a_trace_not_sampled_makes_no_spans_downstream(spans) -> None:
    """A caller whose trace is not sampled (flags 00): no span in that trace, and the delivery
    of what its mutation published is not sampled as a trace of its own either."""
    room = f"r{uuid.uuid4().hex[:8]}"
    async with GraphQLTestClient(CHAT, otel=True) as client:
        async with client.subscribe(JOIN, {"rooms": [{"id": room}]}) as stream:
            await stream.next()
            sent = await client.execute(SEND, {"room": {"id": room}, "message": "hi"},
                                        headers={"traceparent": f"00-{TRACE_ID}-00f067aa0ba902b7-00"})
            assert sent.data == {"sendChatMessage": True}
            assert (await stream.next()).data == {"joinChatRooms": {"id": room, "message": "hi"}}

    finished = spans.get_finished_spans()
    assert [s.name for s in finished if hex_trace(s) == TRACE_ID] == []
    deliveries = [s for s in finished if s.name == f"process chat-room-{room}"]
    assert len(deliveries) == 1 and deliveries[0].parent is not None  # the join notice's, in the subscription's trace


async def test_an_unsampled_request_costs_what_an_untraced_one_does(spans) -> None:
    """Sampled, a request is answered by the full route, whose schema extension makes the
    operation's spans; not sampled, by the lean handler, as with tracing off."""
    async with GraphQLTestClient("tests.support.otel_schema:schema", otel=True) as client:
        sampled = await client.execute("query Route { answeredBy }", headers={"traceparent": TRACEPARENT})
        unsampled = await client.execute("query Route { answeredBy }",
                                         headers={"traceparent": f"00-{TRACE_ID}-00f067aa0ba902b7-00"})
    async with GraphQLTestClient("tests.support.otel_schema:schema", otel=False) as client:
        untraced = await client.execute("query Route { answeredBy }")
    assert unsampled.data == untraced.data  # the route an untraced request takes
    assert sampled.data == {"answeredBy": "GraphQLHTTP"}  # the full route's consumer
    overrides.declare_all()
    if overrides.REGISTRY["strawberry-lean-http"].active:  # not with GQLCHANNELS_FAST_PATHS=0
        assert untraced.data == {"answeredBy": "HTTPRequestConsumer"}  # the lean handler's
    assert [s.name for s in spans.get_finished_spans() if hex_trace(s) == TRACE_ID] == [
        "GraphQL parse and validate", "query Route", "POST /graphql"]  # the sampled request's alone


async def test_an_operation_over_server_sent_events_is_in_the_requests_trace(spans) -> None:
    async with GraphQLTestClient(CHAT, otel=True, sse=True) as client:
        response = await client.http.post("/graphql", json={"query": "query Hi { hello }"},
                                          headers={"accept": "text/event-stream", "traceparent": TRACEPARENT})
        assert response.headers["content-type"].startswith("text/event-stream")
        assert 'data: {"data":{"hello":"Hello, world!"}}' in response.text

    server = by_name(spans, "POST /graphql")[0]
    operation = by_name(spans, "query Hi")[0]
    assert hex_trace(operation) == TRACE_ID and operation.parent.span_id == server.context.span_id


@pytest.fixture(scope="module")
def channels_rabbitmq_python(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """channels-rabbitmq 4.0.1's environment, the one tests/layers/amqp's compatibility test uses."""
    cache = getattr(request.config, "cache", None)
    return peer_python(cache.mkdir("channels-rabbitmq-venv") if cache else tmp_path_factory.mktemp("peer-venv"))


async def test_a_process_on_channels_rabbitmq_is_not_disturbed_by_traced_messages(
        spans, amqp_url: str, channels_rabbitmq_python: Path, tmp_path: Path) -> None:
    """The real channels-rabbitmq 4.0.1, in a process of its own, receives what a traced
    publish sends as the message itself, and a traced process receives its (untraced) messages."""
    from gqlchannels import telemetry

    telemetry.enable(configure_sdk=False)
    ours = RabbitMQChannelLayer(amqp_url)
    try:
        async with ChannelsRabbitmqPeer(channels_rabbitmq_python, amqp_url, tmp_path / "peer.log") as theirs:
            group = f"otel-{uuid.uuid4().hex[:8]}"
            our_channel, their_channel = await ours.new_channel(), await theirs.new_channel()
            await ours.group_add(group, our_channel)
            await theirs.group_add(group, their_channel)
            with trace.get_tracer("tests").start_as_current_span("job"):
                await publish_through(ours, group, {"type": "from.ours", "text": "hi"})
            await theirs.group_send(group, {"type": "from.theirs"})
            received = [await theirs.receive(their_channel, 10) for _ in range(2)]
            assert sorted(received, key=str) == [{"type": "from.ours", "text": "hi"}, {"type": "from.theirs"}]
            mine = [await asyncio.wait_for(ours.receive(our_channel), 10) for _ in range(2)]
            assert sorted(map(dict, mine), key=str) == sorted(received, key=str)
        assert by_name(spans, f"send {group}")[0].attributes["messaging.system"] == "rabbitmq"
    finally:
        await ours.close()


def test_a_span_ended_in_another_context_logs_nothing(spans, caplog: pytest.LogCaptureFixture) -> None:
    """An operation whose span ends in another context than it began in (a subscription's
    generator closed by a finaliser's task) ends it quietly: OpenTelemetry's own detach would
    log an ERROR with a traceback."""
    import contextvars

    from gqlchannels.telemetry.otel import OperationSpans

    tracing = OperationSpans()
    span, token = contextvars.copy_context().run(tracing.start)
    executed = types.SimpleNamespace(query="{ hello }", operation_name=None, operation_type=None,
                                     pre_execution_errors=None, result=None)
    tracing.end(span, token, executed, error=None)
    assert [s.name for s in spans.get_finished_spans()] == ["GraphQL Operation"]
    assert not [r for r in caplog.records if r.levelname == "ERROR"], caplog.text


async def test_a_blocking_publish_from_a_thread_continues_the_threads_trace(spans) -> None:
    room = f"r{uuid.uuid4().hex[:8]}"
    tracer = trace.get_tracer("tests")

    def job() -> int:
        with tracer.start_as_current_span("celery task") as task:
            gqlchannels.publish(f"chat-room-{room}", {"type": "chat.message", "room_id": room, "message": "done"})
        return task.get_span_context().span_id

    async with GraphQLTestClient(CHAT, otel=True) as client:
        async with client.subscribe(JOIN, {"rooms": [{"id": room}]}) as stream:
            await stream.next()
            task_span = await asyncio.to_thread(job)
            assert (await stream.next()).data["joinChatRooms"]["message"] == "done"

    producer = by_name(spans, f"send chat-room-{room}")[-1]
    assert producer.parent.span_id == task_span
    assert any(d.parent is not None and d.parent.span_id == producer.context.span_id
               for d in by_name(spans, f"process chat-room-{room}"))


def test_a_script_with_its_own_tracer_provider_publishes_in_its_trace(amqp_url: str) -> None:
    """A process that is not a server and never heard of --otel (a Celery worker) but uses
    OpenTelemetry itself: gqlchannels.publish() joins the trace of the caller's span, and the
    message carries it in its AMQP headers."""
    script = f"""
import asyncio, json, aiormq
from opentelemetry import trace
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
import gqlchannels

exporter = InMemorySpanExporter()
provider = TracerProvider()
provider.add_span_processor(SimpleSpanProcessor(exporter))
trace.set_tracer_provider(provider)
URL, GROUP = {amqp_url!r}, "otel-script-{uuid.uuid4().hex[:8]}"

async def listen():
    connection = await aiormq.connect(URL)
    channel = await connection.channel()
    queue = (await channel.queue_declare(exclusive=True)).queue
    await channel.exchange_declare("groups", exchange_type="direct")
    await channel.queue_bind(queue, "groups", routing_key=GROUP)
    got = asyncio.Queue()
    await channel.basic_consume(queue, got.put, no_ack=True)
    return connection, got

async def main():
    connection, got = await listen()
    with trace.get_tracer("job").start_as_current_span("report") as job:
        await asyncio.to_thread(gqlchannels.publish, GROUP, {{"type": "note"}}, layer_url=URL)
    delivered = await asyncio.wait_for(got.get(), 10)
    await connection.close()
    producer = [s for s in exporter.get_finished_spans() if s.name == "send " + GROUP][0]
    print(json.dumps({{"job": format(job.get_span_context().span_id, "016x"),
                      "parent": format(producer.parent.span_id, "016x"),
                      "system": producer.attributes["messaging.system"],
                      "traceparent": delivered.header.properties.headers["traceparent"],
                      "producer": format(producer.context.span_id, "016x")}}))

asyncio.run(main())
"""
    import json
    import subprocess
    import sys

    from tests.support.server import clean_env

    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60, env=clean_env())
    assert done.returncode == 0, done.stderr
    seen = json.loads(done.stdout.strip().splitlines()[-1])
    assert seen["parent"] == seen["job"] and seen["system"] == "rabbitmq"
    assert seen["traceparent"].split("-")[2] == seen["producer"]


async def test_a_websocket_operation_continues_the_trace_of_the_handshake(spans) -> None:
    async with GraphQLTestClient(CHAT, otel=True) as client:
        async with client.subscribe(JOIN, {"rooms": [{"id": "lobby"}]}, headers={"traceparent": TRACEPARENT}) as stream:
            await stream.next()

    websocket = by_name(spans, "graphql-transport-ws subscribe")[0]
    assert hex_trace(websocket) == TRACE_ID and format(websocket.parent.span_id, "016x") == "00f067aa0ba902b7"
    assert by_name(spans, "subscription Join")[0].parent.span_id == websocket.context.span_id
