"""Persisted operations: automatic persisted queries (Apollo's protocol) and trusted documents
(a manifest, --only-persisted), against the real server over HTTP POST and GET, both
WebSocket protocols and server-sent events; and the store's bounds and the manifest's checks
as units."""

from __future__ import annotations

import hashlib
import json
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from gqlchannels.graphql.persisted import (
    APQStore,
    ManifestError,
    PersistedOperations,
    PersistedQueryError,
    load_manifest,
    manifest_from_data,
)
from tests.support.server import CHAT_APP, ServerProcess, metric, run_cli

HELLO = "query Hello($name: String!) { hello(name: $name) }"
SEND = "mutation Send($room: String!, $message: String!) { sendChatMessage(room: {id: $room}, message: $message) }"
JOIN = "subscription Join($room: String!) { joinChatRooms(rooms: [{id: $room}]) { id message } }"
NOT_FOUND = {"errors": [{"message": "PersistedQueryNotFound", "extensions": {"code": "PERSISTED_QUERY_NOT_FOUND"}}]}
NOT_SUPPORTED = {"errors": [{"message": "PersistedQueryNotSupported",
                             "extensions": {"code": "PERSISTED_QUERY_NOT_SUPPORTED"}}]}
GRAPHQL_RESPONSE_JSON = "application/graphql-response+json, application/json;q=0.9"  # Apollo Client 4's Accept


def sha256(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def apq(text: str) -> dict[str, Any]:
    return {"persistedQuery": {"version": 1, "sha256Hash": sha256(text)}}


def unique_hello() -> str:
    """A document no other test has registered (the store is the server's, shared by tests)."""
    return f"query Hello{uuid.uuid4().hex[:12]}($name: String!) {{ hello(name: $name) }}"


def persisted_metric(server: ServerProcess, outcome: str) -> float:
    return metric(server, "gqlchannels_persisted_operations_total", outcome=outcome)


@pytest.fixture(scope="module")
def server() -> Iterator[ServerProcess]:
    with ServerProcess(CHAT_APP) as server:
        yield server


# --- automatic persisted queries over HTTP -------------------------------------------------


def test_apq_a_hash_alone_is_not_found_then_registered_with_the_document_then_served(server: ServerProcess) -> None:
    query = unique_hello()
    url = f"{server.url}/graphql"
    misses, registered, hits = (persisted_metric(server, outcome) for outcome in ("miss", "registered", "hit"))

    first = httpx.post(url, json={"extensions": apq(query), "variables": {"name": "a"}})
    # As Apollo Server 5 answers it: 200, the code Apollo Client's link retries on, and no
    # cache may keep the miss.
    assert (first.status_code, first.json()) == (200, NOT_FOUND)
    assert first.headers["cache-control"] == "private, no-cache, must-revalidate"

    second = httpx.post(url, json={"query": query, "extensions": apq(query), "variables": {"name": "a"}})
    assert (second.status_code, second.json()) == (200, {"data": {"hello": "Hello, a!"}})

    third = httpx.post(url, json={"extensions": apq(query), "variables": {"name": "b"}})
    assert (third.status_code, third.json()) == (200, {"data": {"hello": "Hello, b!"}})

    assert persisted_metric(server, "miss") == misses + 1
    assert persisted_metric(server, "registered") == registered + 1
    assert persisted_metric(server, "hit") == hits + 1


def test_apq_over_get_is_served_from_the_hash_in_the_query_string(server: ServerProcess) -> None:
    query = unique_hello()
    url = f"{server.url}/graphql"
    params = {"extensions": json.dumps(apq(query)), "variables": json.dumps({"name": "get"})}
    # curl's Accept (*/*): without a `query` parameter this would otherwise be GraphiQL's page.
    missed = httpx.get(url, params=params, headers={"accept": "*/*"})
    assert (missed.status_code, missed.json()) == (200, NOT_FOUND)
    assert missed.headers["cache-control"] == "private, no-cache, must-revalidate"
    assert httpx.get(url, params={**params, "query": query}).json() == {"data": {"hello": "Hello, get!"}}
    served = httpx.get(url, params=params, headers={"accept": "*/*"})
    assert (served.status_code, served.json()) == (200, {"data": {"hello": "Hello, get!"}})


def test_apq_not_found_is_200_for_graphql_response_json_clients_too(server: ServerProcess) -> None:
    """Apollo Server 5 answers it 200 whatever the Accept; a GraphQL-over-HTTP client that
    prefers application/graphql-response+json (Apollo Client 4 does) gets that media type."""
    response = httpx.post(f"{server.url}/graphql", json={"extensions": apq(unique_hello())},
                          headers={"accept": GRAPHQL_RESPONSE_JSON})
    assert (response.status_code, response.json()) == (200, NOT_FOUND)
    assert response.headers["content-type"].startswith("application/graphql-response+json")


def test_a_document_whose_hash_does_not_match_is_refused_with_400_and_not_stored(server: ServerProcess) -> None:
    query, other = unique_hello(), unique_hello()
    url = f"{server.url}/graphql"
    response = httpx.post(url, json={"query": other, "extensions": apq(query), "variables": {"name": "x"}})
    assert response.status_code == 400
    assert response.json() == {"errors": [{"message": "provided sha does not match query",
                                           "extensions": {"code": "PERSISTED_QUERY_MISMATCH"}}]}
    assert httpx.post(url, json={"extensions": apq(query), "variables": {"name": "x"}}).json() == NOT_FOUND


@pytest.mark.parametrize(("extensions", "message"), [
    ({"persistedQuery": {"version": 2, "sha256Hash": "a" * 64}}, "Unsupported persisted query version"),
    ({"persistedQuery": {"version": 1}}, "'extensions.persistedQuery.sha256Hash' must be"),
    ({"persistedQuery": {"version": 1, "sha256Hash": ["a"]}}, "'extensions.persistedQuery.sha256Hash' must be"),
    ({"persistedQuery": {"version": 1, "sha256Hash": "not a hash\n"}}, "'extensions.persistedQuery.sha256Hash' must be"),
    ({"persistedQuery": "a" * 64}, "'extensions.persistedQuery' must be an object"),
], ids=["version", "no-hash", "list", "spaces", "string"])
def test_a_malformed_persisted_query_is_a_clear_400(server: ServerProcess, extensions: dict[str, Any],
                                                     message: str) -> None:
    response = httpx.post(f"{server.url}/graphql", json={"extensions": extensions})
    assert response.status_code == 400, response.text
    [error] = response.json()["errors"]
    assert error["message"].startswith(message) and error["extensions"]["code"] == "BAD_REQUEST"
    assert "Traceback" not in server.log()


def test_plain_requests_are_served_as_before(server: ServerProcess) -> None:
    url = f"{server.url}/graphql"
    assert httpx.post(url, json={"query": HELLO, "variables": {"name": "p"}}).json() == {"data": {"hello": "Hello, p!"}}
    assert httpx.post(url, json={"variables": {}}).status_code == 400  # no query, nothing persisted: as before
    assert httpx.get(url, headers={"accept": "text/html"}).headers["content-type"].startswith("text/html")


def test_without_apq_a_hash_gets_persisted_query_not_supported() -> None:
    with ServerProcess(CHAT_APP, "--no-apq") as server:
        url = f"{server.url}/graphql"
        response = httpx.post(url, json={"extensions": apq(HELLO), "variables": {"name": "n"}})
        assert (response.status_code, response.json()) == (200, NOT_SUPPORTED)
        # Apollo Client's link then stops hashing and sends the document alone.
        assert httpx.post(url, json={"query": HELLO, "variables": {"name": "n"}}).json() == \
            {"data": {"hello": "Hello, n!"}}


# --- the APQ store, as a unit ----------------------------------------------------------------


def test_the_store_is_bounded_in_documents_least_recently_used_out_first() -> None:
    store = APQStore(max_documents=3, max_bytes=10_000)
    for key in "abc":
        assert store.put(key, key * 10, 10)
    assert store.get("a") == "a" * 10  # now the most recently used
    store.put("d", "d" * 10, 10)
    assert len(store) == 3 and "b" not in store and all(key in store for key in "acd")


def test_the_store_is_bounded_in_bytes() -> None:
    store = APQStore(max_documents=1000, max_bytes=1000)
    for index in range(50):
        assert store.put(str(index), "x" * 90, 90)
        assert store.bytes <= 1000
    assert len(store) == 11 and store.bytes == 990
    assert not store.put("big", "x" * 101, 101)  # over a tenth of the store: run, not kept
    assert "big" not in store and store.bytes == 990
    store.put("49", "y" * 10, 10)  # replacing an entry counts its new size only
    assert store.bytes == 910


def test_clients_cannot_grow_the_store_beyond_its_bounds() -> None:
    persisted = PersistedOperations(store=APQStore(max_documents=100, max_bytes=20_000))
    for index in range(5000):
        query = f"query Q{index} {{ hello(name: \"{'x' * (index % 300)}\") }}"
        assert persisted.resolve({"query": query, "extensions": apq(query)}) == query
    assert len(persisted.store) <= 100 and persisted.store.bytes <= 20_000


def test_resolve_with_nothing_persisted_returns_the_query_itself() -> None:
    persisted = PersistedOperations()
    query = "{ hello }"
    assert persisted.resolve({"query": query}) is query
    assert persisted.resolve({}) is None
    assert persisted.resolve({"query": 5}) == 5  # the transport's own checks refuse it


def test_a_document_utf8_cannot_encode_is_a_mismatch_not_a_crash() -> None:
    with pytest.raises(PersistedQueryError) as raised:
        PersistedOperations().resolve({"query": "{ hello(name: \"\ud800\") }", "extensions": apq("{ hello }")})
    assert (raised.value.status, raised.value.code) == (400, "PERSISTED_QUERY_MISMATCH")


# --- trusted documents: the manifest -------------------------------------------------------

RELAY_ID = "3c1d5b0e7f2a4c6e8a9b0c1d2e3f4a5b"  # Relay's ids are md5 hashes: ids of the manifest's own


def apollo_manifest(*bodies: str) -> dict[str, Any]:
    """What @apollo/generate-persisted-query-manifest writes."""
    return {"format": "apollo-persisted-query-manifest", "version": 1, "operations": [
        {"id": sha256(body), "name": body.split()[1].split("(")[0], "type": body.split()[0], "body": body}
        for body in bodies]}


@pytest.fixture(scope="module")
def manifest_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("manifest") / "persisted-query-manifest.json"
    path.write_text(json.dumps(apollo_manifest(HELLO, SEND, JOIN)))
    return path


@pytest.fixture(scope="module")
def map_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("manifest") / "persisted-documents.json"
    path.write_text(json.dumps({sha256(HELLO): HELLO, RELAY_ID: "query Relay { hello(name: \"relay\") }"}))
    return path


@pytest.fixture(scope="module")
def manifest_server(map_file: Path) -> Iterator[ServerProcess]:
    with ServerProcess(CHAT_APP, "--persisted-operations", str(map_file)) as server:
        yield server


@pytest.mark.parametrize("request_params", [
    {"documentId": f"sha256:{sha256(HELLO)}"},
    {"documentId": sha256(HELLO)},
    {"doc_id": sha256(HELLO)},
    {"extensions": apq(HELLO)},
], ids=["documentId-sha256", "documentId-bare", "relay-doc_id", "apq-extension"])
def test_a_manifest_document_is_run_by_its_id(manifest_server: ServerProcess, request_params: dict[str, Any]) -> None:
    url = f"{manifest_server.url}/graphql"
    posted = httpx.post(url, json={**request_params, "variables": {"name": "m"}})
    assert (posted.status_code, posted.json()) == (200, {"data": {"hello": "Hello, m!"}})
    query_string = {key: value if isinstance(value, str) else json.dumps(value) for key, value in request_params.items()}
    got = httpx.get(url, params={**query_string, "variables": json.dumps({"name": "g"})})
    assert (got.status_code, got.json()) == (200, {"data": {"hello": "Hello, g!"}})


def test_a_relay_id_names_its_document(manifest_server: ServerProcess) -> None:
    response = httpx.post(f"{manifest_server.url}/graphql", json={"doc_id": RELAY_ID, "query": ""})
    assert response.json() == {"data": {"hello": "Hello, relay!"}}


def test_an_unknown_id_is_not_found(manifest_server: ServerProcess) -> None:
    url = f"{manifest_server.url}/graphql"
    for params in ({"documentId": f"sha256:{'0' * 64}"}, {"documentId": "nope"}, {"doc_id": "nope"}):
        response = httpx.post(url, json=params)
        assert (response.status_code, response.json()) == (200, NOT_FOUND), params


@pytest.mark.parametrize(("params", "message"), [
    ({"documentId": "sha256:ABC"}, "a 'sha256:' document id needs 64 lower-case hexadecimal digits"),
    ({"documentId": "md5:abc"}, "document ids prefixed 'md5' are not served"),
    ({"documentId": "has space"}, "'documentId' must be a document id"),
    ({"documentId": 5}, "'documentId' must be a document id"),
    ({"doc_id": ["x"]}, "'doc_id' must be a document id"),
    ({"documentId": "a", "doc_id": "b"}, "'documentId' and 'doc_id' name different documents"),
    ({"documentId": sha256(HELLO), "query": HELLO}, "send a document's id ('documentId') or its text ('query')"),
], ids=["short-hash", "prefix", "space", "number", "list", "both", "with-query"])
def test_a_malformed_id_is_a_clear_400(manifest_server: ServerProcess, params: dict[str, Any], message: str) -> None:
    response = httpx.post(f"{manifest_server.url}/graphql", json=params)
    assert response.status_code == 400, response.text
    [error] = response.json()["errors"]
    assert error["message"].startswith(message), error
    assert error["extensions"]["code"] == "BAD_REQUEST"


def test_with_a_manifest_other_documents_still_run_and_apq_still_registers(manifest_server: ServerProcess) -> None:
    url = f"{manifest_server.url}/graphql"
    query = unique_hello()
    assert httpx.post(url, json={"query": query, "variables": {"name": "o"}}).json() == {"data": {"hello": "Hello, o!"}}
    assert httpx.post(url, json={"extensions": apq(query), "variables": {"name": "o"}}).json() == NOT_FOUND
    httpx.post(url, json={"query": query, "extensions": apq(query), "variables": {"name": "o"}})
    # The APQ store answers documentId "sha256:" too, for a CDN-friendly GET of a registered document.
    got = httpx.get(url, params={"documentId": f"sha256:{sha256(query)}", "variables": json.dumps({"name": "c"})})
    assert got.json() == {"data": {"hello": "Hello, c!"}}


def test_both_manifest_formats_are_read(manifest_file: Path, map_file: Path) -> None:
    apollo = load_manifest(manifest_file)
    assert len(apollo) == 3 and apollo.get(sha256(SEND)) == SEND
    plain = load_manifest(map_file)
    assert plain.get(RELAY_ID) == "query Relay { hello(name: \"relay\") }" and plain.ids_by_text[HELLO] == sha256(HELLO)
    prefixed = manifest_from_data({f"sha256:{sha256(HELLO)}": HELLO})
    assert prefixed.get(sha256(HELLO)) == HELLO


@pytest.mark.parametrize(("data", "message"), [
    ([], "expected a JSON object"),
    ({}, "holds no operations"),
    ({"format": "relay"}, "unknown format 'relay'"),
    ({"format": "apollo-persisted-query-manifest", "version": 2, "operations": []}, "version 2 is not supported"),
    ({"format": "apollo-persisted-query-manifest", "version": 1, "operations": {}}, "'operations' must be a list"),
    ({"format": "apollo-persisted-query-manifest", "version": 1, "operations": [
        {"id": sha256(HELLO), "name": "Hello", "type": "query", "body": HELLO},
        {"id": sha256("{ hello }"), "name": "Broken", "type": "query", "body": "{ hello "}]},
     "operation 2 (id '" + sha256("{ hello }")[:80] + "', name 'Broken'): the document does not parse: Syntax Error"),
    ({"format": "apollo-persisted-query-manifest", "version": 1, "operations": [
        {"id": "0" * 64, "name": "Hello", "type": "query", "body": HELLO}]},
     f"operation 1 (id '{'0' * 64}', name 'Hello'): the id is not the SHA-256 hash of the document (that is {sha256(HELLO)})"),
    ({"format": "apollo-persisted-query-manifest", "version": 1, "operations": [
        {"id": "a", "name": "A", "type": "fetch", "body": HELLO}]}, "operation 1 (id 'a', name 'A'): type 'fetch'"),
    ({"format": "apollo-persisted-query-manifest", "version": 1, "operations": ["{ hello }"]},
     "operation 1 must be an object"),
    ({"a": "{ hello }", "b": 5}, "operation 2 (id 'b'): the document must be a non-empty string"),
    ({"a b": "{ hello }"}, "operation 1 (id 'a b'): the id may hold only"),
    ({"sha256:abc": "{ hello }"}, "a 'sha256:' id needs 64 lower-case hexadecimal digits"),
    ({"format": "apollo-persisted-query-manifest", "version": 1, "operations": [
        {"id": "x", "name": "A", "type": "query", "body": "{ hello }"},
        {"id": "x", "name": "B", "type": "query", "body": "{ hello(name: \"b\") }"}]},
     "operation 2 (id 'x', name 'B'): the id is also that of operation 1 (id 'x', name 'A'), with another document"),
], ids=["list", "empty", "format", "version", "operations", "syntax", "hash", "type", "entry", "body", "id", "prefix",
        "duplicate"])
def test_a_bad_manifest_is_refused_naming_the_entry(data: Any, message: str) -> None:
    with pytest.raises(ManifestError) as raised:
        manifest_from_data(data, "ops.json")
    assert str(raised.value).startswith("ops.json: ") and message in str(raised.value), raised.value


@pytest.mark.parametrize(("content", "message"), [
    (None, "no such file"),
    ("{not json", "is not valid JSON"),
    (json.dumps({"q1": "{ hello }", "q2": "query { nope "}), "operation 2 (id 'q2'): the document does not parse"),
], ids=["missing", "json", "entry"])
def test_serve_stops_at_start_on_a_bad_manifest_naming_the_file_and_entry(tmp_path: Path, content: str | None,
                                                                          message: str) -> None:
    path = tmp_path / "ops.json"
    if content is not None:
        path.write_text(content)
    result = run_cli("serve", CHAT_APP, "--persisted-operations", str(path), "--port", "0")
    assert result.returncode == 1
    [line] = result.stderr.strip().splitlines()
    assert line.startswith(f"Error: --persisted-operations {path}: ") and message in line, line


def test_a_bad_manifest_from_the_environment_names_the_variable(tmp_path: Path) -> None:
    from tests.support.server import clean_env

    path = tmp_path / "ops.json"
    path.write_text("[]")
    result = run_cli("serve", CHAT_APP, "--port", "0", env=clean_env(GQLCHANNELS_PERSISTED_OPERATIONS=str(path)))
    assert result.returncode == 1
    assert f"GQLCHANNELS_PERSISTED_OPERATIONS={path} (--persisted-operations)" in result.stderr, result.stderr


def test_only_persisted_needs_a_manifest() -> None:
    result = run_cli("serve", CHAT_APP, "--only-persisted", "--port", "0")
    assert result.returncode == 1
    assert "--only-persisted needs the manifest of the operations to serve: --persisted-operations PATH" in result.stderr


# --- WebSocket and server-sent events --------------------------------------------------------


async def first_messages(url: str, protocol: str, payload: dict[str, Any], count: int = 1) -> list[dict[str, Any]]:
    """Open a WebSocket, run one operation, return its first `count` messages (or up to an
    error or complete), and check the connection still answers a plain query afterwards."""
    from tests.support.gql_clients import Subscriber

    subscriber = await Subscriber.open(url, protocol)
    start = "subscribe" if protocol == "graphql-transport-ws" else "start"
    try:
        await subscriber.send({"id": "p", "type": start, "payload": payload})
        messages = []
        while len(messages) < count:
            message = await subscriber.recv()
            messages.append(message)
            if message["type"] in ("error", "complete"):
                break
        if messages[-1]["type"] not in ("error", "complete"):
            await subscriber.send({"id": "p", "type": "complete" if protocol == "graphql-transport-ws" else "stop"})
        return messages
    finally:
        await subscriber.close()


@pytest.mark.parametrize("protocol", ["graphql-transport-ws", "graphql-ws"])
async def test_apq_over_websocket(server: ServerProcess, protocol: str) -> None:
    query = unique_hello()
    [missed] = await first_messages(server.ws_url, protocol, {"extensions": apq(query), "variables": {"name": "w"}})
    error = missed["payload"][0] if protocol == "graphql-transport-ws" else missed["payload"]
    assert missed["type"] == "error" and error == NOT_FOUND["errors"][0]
    [data] = await first_messages(server.ws_url, protocol, {"query": query, "extensions": apq(query),
                                                            "variables": {"name": "w"}})
    assert data["payload"] == {"data": {"hello": "Hello, w!"}}
    [data] = await first_messages(server.ws_url, protocol, {"extensions": apq(query), "variables": {"name": "v"}})
    assert data["payload"] == {"data": {"hello": "Hello, v!"}}
    [mismatch] = await first_messages(server.ws_url, protocol, {"query": HELLO, "extensions": apq(query),
                                                                "variables": {"name": "w"}})
    assert mismatch["type"] == "error" and "PERSISTED_QUERY_MISMATCH" in json.dumps(mismatch)
    assert "Traceback" not in server.log()


@pytest.fixture(scope="module")
def only_persisted_server(manifest_file: Path) -> Iterator[ServerProcess]:
    with ServerProcess(CHAT_APP, "--persisted-operations", str(manifest_file), "--only-persisted", "--sse") as server:
        yield server


def assert_refused(response: httpx.Response) -> None:
    assert response.status_code == 403, response.text
    [error] = response.json()["errors"]
    assert error["extensions"]["code"] == "PERSISTED_QUERY_ONLY"
    assert error["message"].startswith("only persisted operations are served here")


def test_only_persisted_refuses_any_other_document_over_http(only_persisted_server: ServerProcess) -> None:
    url = f"{only_persisted_server.url}/graphql"
    refusals = persisted_metric(only_persisted_server, "refused")
    assert_refused(httpx.post(url, json={"query": "{ __schema { types { name } } }"}))
    assert_refused(httpx.get(url, params={"query": "{ hello }"}))
    assert_refused(httpx.post(url, json={"query": "{ hello }"}, headers={"accept": GRAPHQL_RESPONSE_JSON}))
    # APQ registers nothing: the document is refused, and its hash stays unknown.
    query = unique_hello()
    assert_refused(httpx.post(url, json={"query": query, "extensions": apq(query), "variables": {"name": "x"}}))
    assert httpx.post(url, json={"extensions": apq(query), "variables": {"name": "x"}}).json() == NOT_FOUND
    assert persisted_metric(only_persisted_server, "refused") == refusals + 4


def test_only_persisted_runs_the_manifest_by_id_or_exact_text(only_persisted_server: ServerProcess) -> None:
    url = f"{only_persisted_server.url}/graphql"
    for params in ({"documentId": f"sha256:{sha256(HELLO)}"}, {"extensions": apq(HELLO)}, {"query": HELLO},
                   {"query": HELLO, "extensions": apq(HELLO)}):
        response = httpx.post(url, json={**params, "variables": {"name": "t"}})
        assert response.json() == {"data": {"hello": "Hello, t!"}}, params


@pytest.mark.parametrize("protocol", ["graphql-transport-ws", "graphql-ws"])
async def test_only_persisted_over_websocket(only_persisted_server: ServerProcess, protocol: str) -> None:
    url = only_persisted_server.ws_url
    [refused] = await first_messages(url, protocol, {"query": "subscription { joinChatRooms(rooms: [{id: \"x\"}]) { id } }"})
    error = refused["payload"][0] if protocol == "graphql-transport-ws" else refused["payload"]
    assert refused["type"] == "error" and error["extensions"]["code"] == "PERSISTED_QUERY_ONLY", refused
    room = f"persisted-{uuid.uuid4().hex[:8]}"
    for payload in ({"documentId": f"sha256:{sha256(JOIN)}"}, {"extensions": apq(JOIN)}, {"query": JOIN}):
        [joined] = await first_messages(url, protocol, {**payload, "variables": {"room": room}})
        assert joined["payload"] == {"data": {"joinChatRooms": {"id": room, "message": "Someone just joined the room!"}}}
    assert "Traceback" not in only_persisted_server.log()


def sse_first_event(url: str, **request: Any) -> tuple[int, str]:
    with httpx.stream("POST", url, headers={"accept": "text/event-stream"}, timeout=10, **request) as response:
        if not response.headers["content-type"].startswith("text/event-stream"):
            response.read()
            return response.status_code, response.text
        for line in response.iter_lines():
            if line.startswith("data: "):
                return 200, line[len("data: "):]
    raise AssertionError("the stream ended without an event")


def test_only_persisted_over_server_sent_events(only_persisted_server: ServerProcess) -> None:
    url = f"{only_persisted_server.url}/graphql"
    status, body = sse_first_event(url, json={"query": "subscription { joinChatRooms(rooms: [{id: \"x\"}]) { id } }"})
    assert status == 403 and "PERSISTED_QUERY_ONLY" in body
    room = f"persisted-{uuid.uuid4().hex[:8]}"
    status, body = sse_first_event(url, json={"documentId": f"sha256:{sha256(JOIN)}", "variables": {"room": room}})
    assert status == 200
    assert json.loads(body) == {"data": {"joinChatRooms": {"id": room, "message": "Someone just joined the room!"}}}
    # urql's Accept weighs JSON and event streams alike: a persisted subscription still streams.
    urql = "application/graphql-response+json, application/graphql+json, application/json, text/event-stream"
    with httpx.stream("POST", url, headers={"accept": urql}, timeout=10,
                      json={"extensions": apq(JOIN), "variables": {"room": room}}) as response:
        assert response.headers["content-type"].startswith("text/event-stream")
    status, body = sse_first_event(url, json={"documentId": "sha256:" + "1" * 64})  # a JSON answer: nothing ran
    assert (status, json.loads(body)) == (200, NOT_FOUND)


# --- the document cache and /metrics ---------------------------------------------------------


async def test_a_persisted_document_is_parsed_and_validated_once(monkeypatch: pytest.MonkeyPatch) -> None:
    """Served from the manifest or the APQ store, a document goes through the server's
    document cache: parsed and validated on first use, then neither again."""
    from gqlchannels.graphql import documents, extension
    from gqlchannels.testing import GraphQLTestClient

    calls = {"parse": 0, "validate": 0}

    def counting(name: str, function: Any) -> Any:
        def counted(*args: Any, **kwargs: Any) -> Any:
            calls[name] += 1
            return function(*args, **kwargs)
        return counted

    monkeypatch.setattr(documents, "parse_document", counting("parse", documents.parse_document))
    monkeypatch.setattr(extension, "validate_document", counting("validate", extension.validate_document))
    registered = unique_hello()
    async with GraphQLTestClient(CHAT_APP, persisted_operations=apollo_manifest(HELLO)) as client:
        documents.DOCUMENTS.clear()
        for round_ in range(3):
            for params in ({"documentId": f"sha256:{sha256(HELLO)}"}, {"extensions": apq(registered)}):
                if round_ == 0 and "extensions" in params:
                    await client.http.post("/graphql", json={"query": registered, **params, "variables": {"name": "r"}})
                response = await client.http.post("/graphql", json={**params, "variables": {"name": str(round_)}})
                assert response.json() == {"data": {"hello": f"Hello, {round_}!"}}
    assert calls == {"parse": 2, "validate": 2}


def test_metrics_count_invalid_requests(server: ServerProcess) -> None:
    before = persisted_metric(server, "invalid")
    httpx.post(f"{server.url}/graphql", json={"documentId": "has space"})
    httpx.post(f"{server.url}/graphql", json={"query": HELLO, "extensions": apq("{ hello }")})
    assert persisted_metric(server, "invalid") == before + 2
    text = httpx.get(f"{server.url}/metrics").text
    for outcome in ("hit", "miss", "registered", "too_large", "refused", "invalid"):
        assert f'gqlchannels_persisted_operations_total{{outcome="{outcome}"}}' in text


# --- the README's worked example -------------------------------------------------------------


def test_the_readme_worked_example(tmp_path: Path) -> None:
    """The manifest and the three requests of the README, against the server it says to start."""
    import re

    from tests.support.readme import readme_section

    section = readme_section("Persisted operations")
    [manifest] = [block for block in re.findall(r"```json\n(.*?)```", section, re.S) if "apollo-persisted" in block]
    (tmp_path / "ops.json").write_text(manifest)
    assert "gqlchannels serve gqlchannels.examples.chat:schema --persisted-operations ops.json --only-persisted" in section
    commands = re.findall(r"\n    (curl .*)\n    (.*)\n", section)
    assert len(commands) == 3
    with ServerProcess(CHAT_APP, "--persisted-operations", "ops.json", "--only-persisted", cwd=tmp_path) as server:
        get, post, refused = commands
        url = re.search(r"'localhost:8000(/graphql\?[^']+)'", get[0]).group(1)
        assert httpx.get(server.url + url).text == get[1]
        body = re.search(r"-d '(.*)'$", post[0]).group(1)
        response = httpx.post(f"{server.url}/graphql", content=body, headers={"content-type": "application/json"})
        assert response.text == post[1]
        body = re.search(r"-d '(.*)'$", refused[0]).group(1)
        response = httpx.post(f"{server.url}/graphql", content=body, headers={"content-type": "application/json"})
        assert str(response.status_code) == refused[1]
