"""The lean GraphQL HTTP handler (gqlchannels.asgi.graphql_http) answers exactly as the full route.

A differential test: the same few hundred generated requests (queries with fragments, aliases
and variables of right and wrong types, errors raised on purpose and by accident, masked
errors, permissions, invalid documents, malformed JSON, GET and POST, mutations over GET,
missing queries, batches, many Accept headers) go, in the same order, to a server serving
through the lean handler and to one with fast paths off, which serves every request through
the middleware, Channels' consumer and Strawberry's view; status, content type and body must
match byte for byte, and so must the metrics both count. Then targeted tests: which route
serves, the response object, the auth hook, a user's extension.
"""

from __future__ import annotations

import json
import random
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from tests.support.server import ServerProcess, clean_env

SCHEMA = "tests.support.lean_http_schema:schema"
EXTENDED_SCHEMA = "tests.support.lean_http_schema:extended_schema"
AUTH = "tests.support.lean_http_schema:auth"

BOOKS = """query Books($c: Int, $o: Int) {
  list: books(count: $c, offset: $o) { ...B author { name country } }
  other: books(count: 2) { ...B }
}
fragment B on Book { id title pages rating blurb }"""

DOCUMENTS: list[tuple[str, list[Any]]] = [  # a document, and variables to send with it
    ("{ hello }", [None]),
    ('{ hello(name: "x") greeting: hello(name: "y") }', [None, {}]),
    ("query Q($n: String) { hello(name: $n) }", [None, {"n": "z"}, {"n": 3}, {"n": None}, {"n": ["a"]}, {"m": 1}]),
    ("query Q($n: String!) { hello(name: $n) }", [None, {}, {"n": "z"}, {"n": None}, {"n": True}]),
    (BOOKS, [None, {"c": 4}, {"c": 6, "o": 3}, {"c": "x"}, {"c": 1.5}, {"c": 51}, {"o": 2 ** 40}]),
    ('{ a: book(id: "1") { title } b: book(id: "x") { title } c: book(id: "5") { blurb author { country } } }',
     [None]),
    ("query ($id: ID!) { book(id: $id) { id ... on Book { title rating } } }",
     [{"id": "2"}, {"id": 2}, {"id": None}, {}]),
    ("{ requiredBook { title } hello }", [None]),
    ("{ boom hello }", [None]),
    ("{ secret }", [None]),
    ("{ hello secret }", [None]),
    ('{ echoHeader(name: "x-echo") path contextKeys whoami }', [None]),
    ('{ setResponse(status: 201, header: "yes") }', [None]),
    ("{ setResponse(status: 200) hello }", [None]),
    ("query ($s: Int!) { setResponse(status: $s) }", [{"s": 400}, {"s": 200}, {"s": 418}]),
    ("mutation M($t: String!) { addBook(title: $t) { id title } }", [{"t": "T"}, {"t": 5}, {}]),
    ('mutation { shout(group: "lobby") }', [None]),
    ('mutation { shout(group: "not valid") }', [None]),
    ("subscription { count }", [None]),
    ("query A { hello } query B { greeting: hello }", [None]),
    ('query Q { hello } mutation M { addBook(title: "t") { id } }', [None]),
    ("{ hello ", [None]),
    ("{ nope }", [None]),
    ("{ books { nope } }", [None]),
    ("{ hello: boom hello }", [None]),
    ("{ __typename }", [None]),
    ("{ __schema { queryType { name } } }", [None]),
    ("fragment F on Query { hello }", [None]),
    ("", [None]),
]
OPERATION_NAMES = [*[None] * 12, "Q", "Books", "A", "B", "M", "Z", ""]
ACCEPTS = [
    None, "application/json", "application/graphql-response+json",
    "application/graphql-response+json, application/json;q=0.9", "application/json, application/graphql-response+json",
    "*/*", "text/html", "text/html,application/xhtml+xml,*/*;q=0.8", "text/event-stream", "application/json;q=0",
    "application/graphql-response+json, application/graphql+json, application/json, text/event-stream, multipart/mixed",
    "multipart/mixed, application/json", "text/event-stream, application/json;q=0.5", "application/xml",
]


def generated_requests(count: int, seed: int) -> Iterator[dict[str, Any]]:
    """httpx.Client.request keyword arguments, always the same for the same seed."""
    rng = random.Random(seed)
    for _ in range(count):
        document, variable_choices = rng.choice(DOCUMENTS)
        params: dict[str, Any] = {"query": document}
        variables = rng.choice(variable_choices)
        if variables is not None or rng.random() < 0.2:
            params["variables"] = variables
        operation_name = rng.choice(OPERATION_NAMES)
        if operation_name is not None or rng.random() < 0.2:
            params["operationName"] = operation_name
        headers = {"x-echo": rng.choice(["one", "two"]), "x-pass": rng.choice(["yes", "no"])}
        accept = rng.choice(ACCEPTS)
        if accept is not None:
            headers["accept"] = accept
        shape = rng.random()
        if shape < 0.55:
            yield {"method": "POST", "url": "/graphql", "json": params, "headers": headers}
        elif shape < 0.8:
            query = {key: json.dumps(value) if key == "variables" else value for key, value in params.items()
                     if value is not None}
            yield {"method": "GET", "url": "/graphql", "params": query, "headers": headers}
        else:
            yield {**rng.choice(odd_requests(params)), "headers": headers}


def odd_requests(params: dict[str, Any]) -> list[dict[str, Any]]:
    """Requests only the full route answers, and some it answers that look like queries."""
    def body(content: bytes, content_type: str = "application/json") -> dict[str, Any]:
        return {"method": "POST", "url": "/graphql", "content": content, "content_type": content_type}

    encoded = json.dumps(params).encode()
    return [
        body(b'{"query": "{ hello }"'),
        body(b"[]"),
        body(json.dumps([params, params]).encode()),
        body(b'"{ hello }"'),
        body(b"5"),
        body(b'{"variables": {}}'),
        body(b'{"query": null}'),
        body(b'{"query": 5}'),
        body(b'{"query": "{ hello }", "operationName": 1}'),
        body(b'{"query": "{ hello }", "variables": "x"}'),
        body(b'{"query": "{ hello }", "extensions": []}'),
        body(b'{"query": "{ hello }", "extensions": {"a": 1}}'),
        body(b"\xff\xfe"),
        body(b"[" * 2000 + b"]" * 2000),
        body(encoded, "text/plain"),
        body(encoded, "application/json; charset=utf-8"),
        body(encoded, "Application/JSON"),
        body(encoded, "application/graphql"),
        body(encoded, ""),
        {"method": "GET", "url": "/graphql"},
        {"method": "GET", "url": "/graphql/", "params": {"query": "{ hello }"}},
        {"method": "GET", "url": "/graphql", "params": {"query": "{ hello }", "variables": ""}},
        {"method": "GET", "url": "/graphql", "params": {"query": "{ hello }", "variables": "{"}},
        {"method": "GET", "url": "/graphql?query=%7B%20hello%20%7D&query=%7B%20boom%20%7D"},
        {"method": "GET", "url": "/graphql?query=%ff"},
        {"method": "PUT", "url": "/graphql", "content": encoded},
        {"method": "DELETE", "url": "/graphql"},
    ]


def answer(client: httpx.Client, request: dict[str, Any]) -> tuple[int, str | None, bytes]:
    request = dict(request)
    content_type = request.pop("content_type", None)
    if content_type is not None:
        request["headers"] = {**request.get("headers", {}), "content-type": content_type}
    response = client.request(**request)
    return response.status_code, response.headers.get("content-type"), response.content


def server(*args: str, fast_paths: bool) -> ServerProcess:
    return ServerProcess(*args, env=clean_env(GQLCHANNELS_FAST_PATHS="1" if fast_paths else "0"))


def counted(metrics: str) -> list[str]:
    return sorted(line for line in metrics.splitlines()
                  if line.startswith(("gqlchannels_http_requests_total{", "gqlchannels_graphql_errors_total{")))


@pytest.mark.parametrize("sse", [False, True], ids=["json", "sse"])
def test_the_lean_handler_answers_as_the_full_route_byte_for_byte(sse: bool) -> None:
    args = (SCHEMA, "--sse") if sse else (SCHEMA,)
    with server(*args, fast_paths=True) as lean, server(*args, fast_paths=False) as full, \
            httpx.Client(base_url=lean.url, timeout=30) as lean_client, \
            httpx.Client(base_url=full.url, timeout=30) as full_client:
        assert lean_client.post("/graphql", json={"query": "{ transport }"}).json()["data"]["transport"] \
            == "HTTPRequestConsumer"
        assert full_client.post("/graphql", json={"query": "{ transport }"}).json()["data"]["transport"] \
            == "GraphQLHTTP"
        differences = []
        executed = 0  # answers with data: most of them the lean handler's
        for number, request in enumerate(generated_requests(400, seed=21 + sse)):
            lean_answer, full_answer = answer(lean_client, request), answer(full_client, request)
            executed += b'"data":{' in lean_answer[2]
            if lean_answer != full_answer:
                differences.append((number, request, lean_answer, full_answer))
        assert not differences, "\n".join(
            f"#{number} {request}:\n  lean {lean_answer}\n  full {full_answer}"
            for number, request, lean_answer, full_answer in differences[:5])
        assert executed > 80
        assert counted(lean_client.get("/metrics").text) == counted(full_client.get("/metrics").text)
        assert lean.log().count("Traceback") == full.log().count("Traceback")


def test_the_response_object_sets_status_and_headers_on_the_lean_route() -> None:
    with server(SCHEMA, fast_paths=True) as lean, httpx.Client(base_url=lean.url, timeout=30) as client:
        response = client.post("/graphql", json={"query": '{ transport setResponse(status: 201, header: "yes") }'})
        assert response.status_code == 201
        assert response.headers["x-lean"] == "yes"
        assert response.json() == {"data": {"transport": "HTTPRequestConsumer", "setResponse": "set"}}
        context = client.get("/graphql", params={"query": '{ contextKeys path echoHeader(name: "x-echo") }'},
                             headers={"x-echo": "caf\xe9".encode("latin-1")})
        assert context.json() == {"data": {"contextKeys": ["request", "response", "events"], "path": "/graphql",
                                           "echoHeader": "caf\xe9"}}


def test_the_auth_hook_is_asked_once_per_request_whichever_route_answers() -> None:
    good = {"authorization": "Bearer good-token"}
    with server(SCHEMA, "--auth", AUTH, fast_paths=True) as lean, \
            httpx.Client(base_url=lean.url, timeout=30) as client:
        def calls() -> int:
            response = client.post("/graphql", json={"query": "{ authCalls }"}, headers=good)
            return response.json()["data"]["authCalls"]

        first = calls()
        refused = client.post("/graphql", json={"query": "{ hello }"},
                              headers={"accept": "application/graphql-response+json"})
        assert (refused.status_code, refused.json()) == \
            (401, {"errors": [{"message": "a valid bearer token is required"}]})
        assert refused.headers["content-type"] == "application/graphql-response+json; charset=utf-8"
        served = client.post("/graphql", json={"query": "{ whoami transport contextKeys }"}, headers=good)
        assert served.json() == {"data": {"whoami": "alice", "transport": "HTTPRequestConsumer",
                                          "contextKeys": ["request", "response", "events", "user"]}}
        invalid = client.post("/graphql", json={"query": "{ nope }"}, headers=good)  # the full route answers
        assert invalid.status_code == 200 and "nope" in invalid.json()["errors"][0]["message"]
        refused_stream = client.post("/graphql", json={"query": "{ whoami }"},
                                     headers={**good, "accept": "text/event-stream"})  # 406 from the full route
        assert refused_stream.status_code == 406
        batch = client.post("/graphql", json=[{"query": "{ hello }"}], headers=good)  # the full route: batching is off
        assert batch.status_code == 400
        assert calls() == first + 5  # each request above once (the 406 comes before any login), and this one


def test_a_schema_with_its_own_extension_is_served_by_the_full_route() -> None:
    with server(EXTENDED_SCHEMA, fast_paths=True) as extended, \
            httpx.Client(base_url=extended.url, timeout=30) as client:
        response = client.post("/graphql", json={"query": "{ transport }"})
        assert response.json() == {"data": {"transport": "GraphQLHTTP"},
                                   "extensions": {"stamp": "from the user's extension"}}
