"""Hostile input, generated (hypothesis, bounded): every HTTP answer is a 4xx or a 2xx, every
WebSocket ends with a protocol close code, and the server still serves afterwards."""

from __future__ import annotations

import asyncio
import hashlib
import json
import os
import re
from collections.abc import Iterator

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed, InvalidStatus

from tests.support.gql_clients import graphql_post
from tests.support.server import ServerProcess

OPS_APP = "tests.support.ops_schema:schema"
BOOM = "postgres://admin:hunter2@db/internal"  # what ops_schema's `boom` resolver raises
FUZZ = settings(max_examples=int(os.environ.get("GQLCHANNELS_FUZZ_EXAMPLES", "150")), deadline=None, suppress_health_check=list(HealthCheck), database=None)
# Close codes a client may legitimately get for bad input (RFC 6455 and graphql-transport-ws).
PROTOCOL_CLOSE_CODES = {1000, 1002, 1003, 1007, 1008, 1009, 4400, 4401, 4403, 4406, 4408, 4409, 4429}

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=30),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=10), children, max_size=4),
    max_leaves=12,
)
graphql_text = st.one_of(
    st.text(max_size=80),
    st.sampled_from(["{ hello }", "{ boom }", "{ __schema { types { name } } }", "subscription { ticks }",
                     "mutation { x }", "query($a: Int!) { hello }", "{ node { child { value } } }", "{"]),
)
# Persisted operations: hashes, ids and the APQ extension, well-formed or not.
document_ids = st.none() | json_values | st.text(max_size=70) | st.sampled_from(
    ["sha256:" + hashlib.sha256(b"{ hello }").hexdigest(), "custom", "sha256:" + "a" * 64, "a" * 64, "sha256:ABC",
     "md5:x", "x-custom:1", ":", "sha256:", "has space"])
persisted_query = st.none() | json_values | st.fixed_dictionaries(
    {"version": st.sampled_from([1, 2, "1", None]), "sha256Hash": document_ids})
persisted_params = st.builds(
    lambda q, p, d, r: {"query": q, "extensions": {"persistedQuery": p}, "documentId": d, "doc_id": r},
    st.none() | graphql_text, persisted_query, document_ids, document_ids)
request_bodies = st.one_of(
    st.binary(max_size=300),
    persisted_params.map(lambda params: json.dumps(params).encode()),
    st.builds(lambda q, v, o: json.dumps({"query": q, "variables": v, "operationName": o}).encode(),
              graphql_text, json_values, st.none() | st.text(max_size=10)),
    json_values.map(lambda v: json.dumps(v).encode()),
)


@pytest.fixture(scope="module")
def target(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    manifest = tmp_path_factory.mktemp("fuzz") / "ops.json"
    manifest.write_text(json.dumps({hashlib.sha256(b"{ hello }").hexdigest(): "{ hello }", "custom": "{ boom }"}))
    with ServerProcess(OPS_APP, "--max-body-size", "4096", "--connection-init-timeout", "1",
                       "--persisted-operations", str(manifest)) as server:
        yield server
    # `{ boom }` is in the fuzzed queries: its resolver's KeyError is the application's own error,
    # logged with its traceback as it should be. Any other traceback is the server failing.
    records = re.split(r"(?m)^(?=[A-Z]+:\s)", server.log())
    faults = [record for record in records if ("Traceback" in record or "Exception in" in record)
              and not record.rstrip().endswith(f"KeyError: {BOOM!r}")]
    assert not faults, faults[0][:4000]


@FUZZ
@given(
    method=st.sampled_from(["GET", "POST", "PUT", "DELETE", "PATCH", "OPTIONS", "HEAD"]),
    path=st.sampled_from(["/graphql", "/graphql/", "/healthz", "/metrics", "/", "/graphql/x", "/%ff"]),
    query_string=st.one_of(st.just(""), st.builds(lambda q: httpx.QueryParams({"query": q}).__str__(), graphql_text),
                           st.text(max_size=30), persisted_params.map(lambda params: str(httpx.QueryParams({
                               key: value if isinstance(value, str) else json.dumps(value)
                               for key, value in params.items() if value is not None})))),
    content_type=st.sampled_from(["application/json", "application/graphql", "text/plain",
                                  "multipart/form-data; boundary=x", "application/x-www-form-urlencoded", ""]),
    accept=st.sampled_from(["*/*", "application/json", "text/html", "application/graphql-response+json", ""]),
    body=request_bodies,
)
def test_http_never_answers_5xx(target: ServerProcess, method: str, path: str, query_string: str,
                                content_type: str, accept: str, body: bytes) -> None:
    url = f"{target.url}{path}" + (f"?{query_string}" if query_string else "")
    headers = {"content-type": content_type, "accept": accept}
    try:
        response = httpx.request(method, url, content=body, headers=headers, timeout=10)
    except httpx.InvalidURL:
        return  # the client library refused to send it; nothing reached the server
    assert response.status_code < 500, (method, url, headers, body, response.status_code, response.text[:300])


ws_frames = st.lists(
    st.one_of(
        st.binary(max_size=60),
        st.text(max_size=60),
        json_values.map(json.dumps),
        st.builds(lambda t, i, p: json.dumps({"type": t, "id": i, "payload": p}),
                  st.sampled_from(["connection_init", "subscribe", "complete", "ping", "pong", "start", "stop",
                                   "connection_terminate", "next", "error", "bogus"]),
                  st.none() | st.text(max_size=5) | st.integers(),
                  json_values | st.builds(lambda q: {"query": q}, graphql_text) | persisted_params),
    ),
    min_size=1, max_size=6,
)


@settings(max_examples=int(os.environ.get("GQLCHANNELS_FUZZ_EXAMPLES", "150")) // 2, deadline=None, suppress_health_check=list(HealthCheck), database=None)
@given(protocol=st.sampled_from(["graphql-transport-ws", "graphql-ws"]), frames=ws_frames)
def test_websocket_garbage_ends_in_protocol_close_codes(target: ServerProcess, protocol: str,
                                                        frames: list[str | bytes]) -> None:
    async def run() -> int | None:
        try:
            async with connect(target.ws_url, subprotocols=[protocol], open_timeout=10) as ws:
                for frame in frames:
                    await ws.send(frame)
                try:
                    async with asyncio.timeout(0.5):
                        while True:
                            await ws.recv()
                except TimeoutError:
                    return None  # still open and not misbehaving: fine
                return ws.close_code
        except ConnectionClosed as closed:
            return closed.rcvd.code if closed.rcvd else None
        except InvalidStatus as refused:
            assert refused.response.status_code < 500
            return None

    code = asyncio.run(run())
    assert code is None or code in PROTOCOL_CLOSE_CODES, (protocol, frames, code)


def test_server_still_serves_after_the_fuzz(target: ServerProcess) -> None:
    assert graphql_post(target.url, "{ hello }") == {"data": {"hello": "hi"}}
