"""Operating the server: readiness, metrics, graceful shutdown on SIGTERM, logs."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import threading
import time
from collections.abc import Iterator

import httpx
import pytest
from websockets.exceptions import ConnectionClosed

from tests.support.gql_clients import Subscriber, graphql_post
from tests.support.server import CHAT_APP, ServerProcess, free_port, metric

OPS_APP = "tests.support.ops_schema:schema"
TICKS = "subscription { ticks }"




@pytest.fixture(scope="module")
def ops_server() -> Iterator[ServerProcess]:
    with ServerProcess(OPS_APP) as server:
        yield server


def test_healthz_and_readyz_while_the_broker_is_unreachable() -> None:
    # A free port refuses connections: the process lives (healthz 200) but cannot deliver (readyz 503).
    port = free_port()
    with ServerProcess(CHAT_APP, "--layer", f"amqp://guest:guest@127.0.0.1:{port}/",
                       ready_path="/healthz") as server:
        ready = httpx.get(f"{server.url}/readyz")
        assert ready.status_code == 503
        # Said at once (startup does not wait out a refusal), naming what and where.
        assert ready.json()["reason"].startswith(
            f"channel layer is not connected to the broker: connection refused at 127.0.0.1:{port}")
        assert httpx.get(f"{server.url}/healthz").status_code == 200
        # Queries that do not touch the layer keep working.
        assert graphql_post(server.url, "{ hello }")["data"]["hello"] == "Hello, world!"


def test_metrics_count_requests_errors_and_operation_types(ops_server: ServerProcess) -> None:
    before_ok = metric(ops_server, "gqlchannels_http_requests_total", status="200", operation="query")
    before_errors = metric(ops_server, "gqlchannels_graphql_errors_total", operation="query")
    for _ in range(3):
        graphql_post(ops_server.url, "{ hello }")
    graphql_post(ops_server.url, "{ boom }")
    httpx.post(f"{ops_server.url}/graphql", content=b"{", headers={"content-type": "application/json"})
    assert metric(ops_server, "gqlchannels_http_requests_total", status="200", operation="query") == before_ok + 4
    assert metric(ops_server, "gqlchannels_graphql_errors_total", operation="query") == before_errors + 1
    assert metric(ops_server, "gqlchannels_http_requests_total", status="400", operation="none") >= 1
    assert metric(ops_server, "gqlchannels_http_request_duration_seconds_count", operation="query") >= 4
    assert metric(ops_server, "gqlchannels_layer_connected") == 1


async def test_metrics_follow_websockets_and_subscriptions(ops_server: ServerProcess) -> None:
    base_connections = metric(ops_server, "gqlchannels_websocket_connections")
    base_subscriptions = metric(ops_server, "gqlchannels_subscriptions_active")
    subscriber = await Subscriber.open(ops_server.ws_url)
    await subscriber.subscribe(TICKS, {})
    assert (await subscriber.next_data()) == {"ticks": "hello None"}
    assert metric(ops_server, "gqlchannels_websocket_connections") == base_connections + 1
    assert metric(ops_server, "gqlchannels_subscriptions_active") == base_subscriptions + 1
    await subscriber.close()
    deadline = time.monotonic() + 10
    while metric(ops_server, "gqlchannels_subscriptions_active") != base_subscriptions and time.monotonic() < deadline:
        await asyncio.sleep(0.1)
    assert metric(ops_server, "gqlchannels_subscriptions_active") == base_subscriptions
    assert metric(ops_server, "gqlchannels_websocket_connections") == base_connections


def test_metrics_sum_over_workers(amqp_url: str) -> None:
    with ServerProcess(CHAT_APP, "--layer", amqp_url, "--workers", "2") as server:
        # Fresh connections spread over both workers; whichever answers the scrape counts all.
        for _ in range(20):
            with httpx.Client() as client:
                client.post(f"{server.url}/graphql", json={"query": "{ hello }"})
        assert metric(server, "gqlchannels_http_requests_total", status="200", operation="query") == 20
        assert metric(server, "gqlchannels_layer_connected") == 1


async def test_sigterm_finishes_requests_closes_websockets_and_exits_zero() -> None:
    with ServerProcess(OPS_APP, "--shutdown-timeout", "10") as server:
        subscriber = await Subscriber.open(server.ws_url)
        await subscriber.subscribe(TICKS, {})
        await subscriber.next_data()
        async with httpx.AsyncClient(timeout=20) as client:
            slow = asyncio.create_task(client.post(f"{server.url}/graphql", json={"query": "{ slow(seconds: 2) }"}))
            await asyncio.sleep(0.5)  # the query is in flight
            started = time.monotonic()
            os.killpg(server.proc.pid, signal.SIGTERM)
            with pytest.raises(ConnectionClosed):
                await asyncio.wait_for(subscriber.ws.recv(), 10)
            assert subscriber.ws.close_code == 1001  # going away: reconnect elsewhere
            response = await slow
        assert response.json() == {"data": {"slow": "slept 2.0"}}
        assert await asyncio.to_thread(server.proc.wait, 15) == 0
        assert time.monotonic() - started < 10


def test_shutdown_timeout_bounds_a_stuck_request() -> None:
    with ServerProcess(OPS_APP, "--shutdown-timeout", "1") as server:
        with httpx.Client(timeout=30) as client:
            thread = threading.Thread(target=lambda: _ignore(client.post, f"{server.url}/graphql",
                                                             json={"query": "{ slow(seconds: 60) }"}))
            thread.start()
            time.sleep(0.5)
            started = time.monotonic()
            os.killpg(server.proc.pid, signal.SIGTERM)
            assert server.proc.wait(20) == 0
            assert time.monotonic() - started < 8  # 1 s for requests, then the layer's close bound
            thread.join(5)


def _ignore(call, *args, **kwargs) -> None:  # noqa: ANN001
    try:
        call(*args, **kwargs)
    except httpx.HTTPError:
        pass


def test_json_logs_one_object_per_line_and_no_password(amqp_url: str) -> None:
    assert "guest:guest@" in amqp_url  # the password this test looks for
    with ServerProcess(CHAT_APP, "--log-format", "json", "--layer", amqp_url) as server:
        graphql_post(server.url, "{ hello }")
        graphql_post(server.url, "{ nope }")
    lines = [line for line in server.log().splitlines() if line.strip()]
    records = [json.loads(line) for line in lines]  # every line is one JSON object
    messages = " ".join(record["message"] for record in records)
    assert '"POST /graphql HTTP/1.1" 200' in messages
    assert "guest:***@" in messages and "guest:guest@" not in server.log()
    assert all({"time", "level", "logger", "message"} <= record.keys() for record in records)


def test_trusted_proxy_headers_only_from_trusted_proxies() -> None:
    forwarded = {"x-forwarded-for": "203.0.113.9"}
    with ServerProcess(CHAT_APP) as trusting:  # default: trust the proxy on loopback
        httpx.post(f"{trusting.url}/graphql", json={"query": "{ hello }"}, headers=forwarded)
    with ServerProcess(CHAT_APP, "--forwarded-allow-ips", "10.1.2.3") as distrusting:
        httpx.post(f"{distrusting.url}/graphql", json={"query": "{ hello }"}, headers=forwarded)
    assert "203.0.113.9" in trusting.log()
    assert "203.0.113.9" not in distrusting.log()
