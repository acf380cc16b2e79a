"""Traces from real servers, exported over OTLP/HTTP to a real receiver (tests/support/
otlp_receiver.py): a mutation on one server and its deliveries on two others, sharing the
RabbitMQ broker, in one trace; a publish from the CLI inside a job's trace; and tracing
off, or asked for without OpenTelemetry installed."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.support.environments import environment_without
from tests.support.gql_clients import Subscriber
from tests.support.otlp_receiver import OTLPReceiver, ReceivedSpan
from tests.support.server import ServerProcess, clean_env, run_cli

APP = "tests.support.otel_schema:schema"
SEND = "mutation Send($room: ChatRoom!, $message: String!) { sendChatMessage(room: $room, message: $message) }"
MODULES = "{ opentelemetryModules }"


def otel_env(receiver: OTLPReceiver | None = None, **extra: str) -> dict[str, str]:
    """The test's environment without any OTEL_* of its own, exporting to `receiver`."""
    env = {key: value for key, value in clean_env().items() if not key.startswith(("OTEL_", "TRACE"))}
    if receiver is not None:
        env["OTEL_EXPORTER_OTLP_ENDPOINT"] = receiver.endpoint
        env["OTEL_BSP_SCHEDULE_DELAY"] = "100"  # ms: export soon, so that the test waits less
    env.update(extra)
    return env


@pytest.fixture
def receiver() -> Iterator[OTLPReceiver]:
    with OTLPReceiver() as running:
        yield running


def in_trace(spans: list[ReceivedSpan], trace_id: str) -> list[ReceivedSpan]:
    return [span for span in spans if span.trace_id == trace_id]


async def test_one_trace_holds_a_mutation_and_its_deliveries_on_two_other_servers(
        receiver: OTLPReceiver, amqp_url: str) -> None:
    room = f"otel-{uuid.uuid4().hex[:8]}"
    group = f"chat-room-{room}"
    trace_id = uuid.uuid4().hex
    servers = [ServerProcess(APP, "--layer", amqp_url, env=otel_env(receiver, OTEL_SERVICE_NAME=f"server-{name}"))
               for name in "abc"]
    for server in servers:
        server.start()
    subscribers: list[Subscriber] = []
    try:
        a, b, c = servers
        # C's subscriber speaks the legacy graphql-ws protocol.
        for server, protocol in ((b, "graphql-transport-ws"), (c, "graphql-ws")):
            subscriber = await Subscriber.open(server.ws_url, protocol)
            subscribers.append(subscriber)
            await subscriber.join_room(room)  # answered once its groups are bound
        async with httpx.AsyncClient(timeout=10) as client:
            response = await client.post(f"{a.url}/graphql", json={
                "query": SEND, "variables": {"room": {"id": room}, "message": "traced"}},
                headers={"traceparent": f"00-{trace_id}-00f067aa0ba902b7-01"})
        assert response.json() == {"data": {"sendChatMessage": True}}
        for subscriber in subscribers:
            assert (await subscriber.messages_until("traced"))[-1] == "traced"

        def complete(spans: list[ReceivedSpan]) -> bool:
            ours = in_trace(spans, trace_id)
            return {(s.service, s.name) for s in ours} >= {
                ("server-a", "POST /graphql"), ("server-a", "mutation Send"), ("server-a", f"send {group}"),
                ("server-b", f"process {group}"), ("server-c", f"process {group}")}

        spans = in_trace(receiver.wait_for(complete), trace_id)
    finally:
        for subscriber in subscribers:
            await subscriber.close()
        for server in servers:
            server.stop()

    def one(service: str, name: str) -> ReceivedSpan:
        found = [s for s in spans if (s.service, s.name) == (service, name)]
        assert len(found) == 1, found
        return found[0]

    http = one("server-a", "POST /graphql")
    assert http.kind == "SERVER" and http.parent_span_id == "00f067aa0ba902b7"
    assert http.attributes["http.response.status_code"] == 200
    mutation = one("server-a", "mutation Send")
    assert mutation.parent_span_id == http.span_id
    assert mutation.attributes["graphql.operation.type"] == "mutation"
    producer = one("server-a", f"send {group}")
    assert producer.kind == "PRODUCER" and producer.parent_span_id == mutation.span_id
    assert producer.attributes["messaging.system"] == "rabbitmq"
    assert producer.attributes["messaging.destination.name"] == group
    for service in ("server-b", "server-c"):
        delivery = one(service, f"process {group}")
        assert delivery.kind == "CONSUMER" and delivery.parent_span_id == producer.span_id
        assert delivery.attributes["messaging.system"] == "rabbitmq"
    # Each delivery is linked to the subscription it was delivered to, whose span (in the trace
    # of the WebSocket's subscribe) ends with it, when the servers stopped.
    everything = receiver.wait_for(lambda spans: {s.service for s in spans if s.name == "subscription"}
                                   >= {"server-b", "server-c"})
    for service in ("server-b", "server-c"):
        subscription = next(s for s in everything if s.service == service and s.name == "subscription")
        assert one(service, f"process {group}").links == ((subscription.trace_id, subscription.span_id),)
        websocket = next(s for s in everything if s.span_id == subscription.parent_span_id)
        expected = "graphql-transport-ws subscribe" if service == "server-b" else "graphql-ws start"
        assert (websocket.name, websocket.kind) == (expected, "SERVER")
    for server in servers:
        assert "Traceback" not in server.log() and "ERROR" not in server.log(), server.log()


def test_the_cli_publishes_inside_the_trace_of_the_job_that_runs_it(receiver: OTLPReceiver, amqp_url: str) -> None:
    trace_id = uuid.uuid4().hex
    group = f"otel-{uuid.uuid4().hex[:8]}"
    done = run_cli("publish", group, '{"text": "hi"}', "--type", "note", "--layer", amqp_url, env=otel_env(
        receiver, TRACEPARENT=f"00-{trace_id}-b7ad6b7169203331-01", OTEL_SERVICE_NAME="nightly-job"))
    assert done.returncode == 0, done.stderr
    spans = receiver.wait_for(lambda spans: any(s.trace_id == trace_id for s in spans))
    producer = next(s for s in spans if s.trace_id == trace_id)
    assert (producer.name, producer.kind, producer.service) == (f"send {group}", "PRODUCER", "nightly-job")
    assert producer.parent_span_id == "b7ad6b7169203331"


def served_modules(*args: str, env: dict[str, str]) -> list[str]:
    with ServerProcess(APP, *args, env=env) as server:
        response = httpx.post(f"{server.url}/graphql", json={"query": MODULES}, timeout=10)
        log = server.log()
    assert "Traceback" not in log, log
    return response.json()["data"]["opentelemetryModules"]


def test_off_no_opentelemetry_module_is_imported_in_the_worker(receiver: OTLPReceiver) -> None:
    assert served_modules(env=otel_env()) == []
    # The variables ask for traces, --no-otel says no: no import either.
    assert served_modules("--no-otel", env=otel_env(receiver)) == []
    # And on (the variables alone are enough), the same query sees them: the check can fail.
    assert "opentelemetry.trace" in served_modules(env=otel_env(receiver))


@pytest.fixture(scope="module")
def python_without_otel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return environment_without(tmp_path_factory.mktemp("no-otel") / "venv", "opentelemetry")


def test_otel_without_the_extra_is_a_one_line_error(python_without_otel: Path) -> None:
    for args, env in ((["--otel"], {}), ([], {"GQLCHANNELS_OTEL": "1"})):
        done = run_cli("serve", "gqlchannels.examples.chat:schema", "--port", "0", *args,
                       env=otel_env(**env), python=str(python_without_otel))
        assert done.returncode == 1
        assert "Traceback" not in done.stderr
        assert "pip install 'gqlchannels[otel]'" in done.stderr
        assert done.stderr.count("\n") == 1, done.stderr
    assert "GQLCHANNELS_OTEL" in done.stderr  # the variable it came from, named


def test_otel_variables_without_the_extra_serve_untraced(python_without_otel: Path) -> None:
    env = otel_env(OTEL_EXPORTER_OTLP_ENDPOINT="http://127.0.0.1:9")
    with ServerProcess(APP, "--log-format", "json", env=env, executable=str(python_without_otel)) as server:
        response = httpx.post(f"{server.url}/graphql", json={"query": "{ hello }"}, timeout=10)
        assert response.json() == {"data": {"hello": "Hello, world!"}}
        lines = [json.loads(line) for line in server.log().splitlines()]  # JSON, every one of them
    warnings = [line["message"] for line in lines if line["level"] == "WARNING"]
    assert [w for w in warnings if "OpenTelemetry is not installed: tracing is off" in w], lines


def test_an_unknown_exporter_is_a_one_line_error() -> None:
    done = run_cli("serve", "gqlchannels.examples.chat:schema", "--port", "0",
                   env=otel_env(OTEL_TRACES_EXPORTER="zipkin-nope"))
    assert done.returncode == 1 and "Traceback" not in done.stderr
    assert "OTEL_TRACES_EXPORTER names 'zipkin-nope'" in done.stderr, done.stderr
