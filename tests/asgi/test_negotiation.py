"""Which answer an HTTP client gets, by its Accept header and the operation: JSON or an event
stream, following its q-values (RFC 9110), with and without --sse."""

from __future__ import annotations

import json
import uuid

import httpx
import pytest

from gqlchannels.asgi.negotiation import Accept
from tests.support.gql_clients import JOIN_ROOMS
from tests.support.server import ServerProcess, metric

# What urql 6's fetchExchange sends with every query and mutation.
URQL = "application/graphql-response+json, application/graphql+json, application/json, text/event-stream, multipart/mixed"
BROWSER = "text/html,application/xhtml+xml,application/xml;q=0.9,image/avif,image/webp,*/*;q=0.8"
QUERY = {"query": "{ hello }"}


def subscription() -> dict:
    return {"query": JOIN_ROOMS, "variables": {"rooms": [{"id": f"neg-{uuid.uuid4().hex[:8]}"}]}}


def answer(server: ServerProcess, accept: str | None, body: dict) -> tuple[int, str, str]:
    """(status, media type, first bytes of the body); an event stream is read up to its first event."""
    headers = {} if accept is None else {"accept": accept}
    with httpx.stream("POST", f"{server.url}/graphql", json=body, headers=headers, timeout=20) as response:
        media_type = response.headers.get("content-type", "").split(";")[0]
        if media_type == "text/event-stream":
            text = ""
            for chunk in response.iter_text():
                text += chunk
                if "\n\n" in text:  # one whole event: enough (a subscription would go on)
                    break
            return response.status_code, media_type, text
        return response.status_code, media_type, response.read().decode()


@pytest.mark.parametrize(("accept", "media_type"), [
    (URQL, "application/graphql-response+json"),
    ("text/event-stream, application/json", "application/json"),  # weighed alike: JSON, as graphql-yoga
    ("text/event-stream;q=0, application/json", "application/json"),
    ("*/*", "application/json"),
    (None, "application/json"),
    ("text/event-stream, application/json;q=0.5", "text/event-stream"),  # the client prefers the stream
    ("text/event-stream", "text/event-stream"),  # graphql-sse's client: a stream of one result
    ("text/*", "text/event-stream"),
])
def test_queries_follow_the_clients_preference_with_sse(memory_sse_server: ServerProcess, accept: str | None,
                                                        media_type: str) -> None:
    status, got, body = answer(memory_sse_server, accept, QUERY)
    assert (status, got) == (200, media_type), body
    if media_type == "text/event-stream":
        assert body.startswith('event: next\ndata: {"data":{"hello":"Hello, world!"}}\n\n')
    else:
        assert json.loads(body) == {"data": {"hello": "Hello, world!"}}


@pytest.mark.parametrize("accept", [URQL, "text/event-stream, application/json", "*/*",
                                    "text/event-stream;q=0.9, application/json;q=0.1, multipart/mixed"])
def test_subscriptions_stream_for_any_client_accepting_a_stream(memory_sse_server: ServerProcess, accept: str) -> None:
    status, media_type, body = answer(memory_sse_server, accept, subscription())
    assert (status, media_type) == (200, "text/event-stream"), body
    assert body.startswith("event: next\n") and "just joined the room!" in body


@pytest.mark.parametrize("accept", [URQL, "text/event-stream;q=0.5, application/json",
                                    "text/event-stream, application/json;q=0.1"])
def test_without_sse_a_client_that_accepts_json_gets_json(memory_server: ServerProcess, accept: str) -> None:
    status, media_type, body = answer(memory_server, accept, QUERY)
    assert status == 200 and media_type.startswith("application/") and media_type.endswith("json"), body
    assert json.loads(body) == {"data": {"hello": "Hello, world!"}}
    mutation = {"query": 'mutation { sendChatMessage(room: {id: "neg"}, message: "hi") }'}
    assert json.loads(answer(memory_server, accept, mutation)[2]) == {"data": {"sendChatMessage": True}}


def test_without_sse_a_subscription_gets_an_error_that_says_where_to_subscribe(memory_server: ServerProcess) -> None:
    status, media_type, body = answer(memory_server, URQL, subscription())
    assert (status, media_type) == (400, "application/graphql-response+json"), body
    message = json.loads(body)["errors"][0]["message"]
    assert "subscriptions are served over WebSocket" in message and "--sse" in message


@pytest.mark.parametrize("body", [QUERY, None])
def test_without_sse_a_client_that_accepts_only_a_stream_gets_406(memory_server: ServerProcess,
                                                                   body: dict | None) -> None:
    status, media_type, text = answer(memory_server, "text/event-stream", body or subscription())
    assert (status, media_type) == (406, "application/json")
    message = json.loads(text)["errors"][0]["message"]
    assert "not enabled on this server" in message and "--sse" in message and "WebSocket" in message


def test_a_browser_still_gets_the_ide_and_a_wildcard_get_json(memory_sse_server: ServerProcess) -> None:
    page = httpx.get(f"{memory_sse_server.url}/graphql", headers={"accept": BROWSER})
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    query = httpx.get(f"{memory_sse_server.url}/graphql", params=QUERY, headers={"accept": BROWSER})
    assert query.json() == {"data": {"hello": "Hello, world!"}}


def test_request_errors_from_a_client_accepting_both_are_the_json_paths(memory_sse_server: ServerProcess) -> None:
    for body, fragment in ((b"not json", "Unable to parse request body as JSON"), (b'{"query": "{ hello("}', "Syntax Error")):
        response = httpx.post(f"{memory_sse_server.url}/graphql", content=body,
                              headers={"accept": URQL, "content-type": "application/json"})
        assert response.status_code == 400 and fragment in response.text
        assert not response.headers["content-type"].startswith("text/event-stream")


def test_operations_answered_as_json_are_counted_by_type(memory_server: ServerProcess) -> None:
    before = metric(memory_server, "gqlchannels_http_requests_total", status="200", operation="query")
    assert answer(memory_server, URQL, QUERY)[0] == 200
    assert metric(memory_server, "gqlchannels_http_requests_total", status="200", operation="query") == before + 1


@pytest.mark.parametrize(("header", "media_type", "quality"), [
    ("application/json;q=0, */*", "application/json", 0.0),  # the exact range wins over */*
    ("application/json;q=0, */*", "text/event-stream", 1.0),
    ("text/*;q=0.3, */*;q=0.1", "text/event-stream", 0.3),
    ("text/event-stream;q=0.2, text/*", "text/event-stream", 0.2),
    ("TEXT/Event-Stream ; Q=0.5", "text/event-stream", 0.5),
    ("*", "application/json", 1.0),  # a bare * (old Java clients) is */*
    ('multipart/mixed;boundary="a,b";q=0.7, application/json;q=0.4', "multipart/mixed", 0.7),
    ('multipart/mixed;boundary="a,b";q=0.7, application/json;q=0.4', "application/json", 0.4),
    ("application/json;q=2, text/event-stream", "application/json", 0.0),  # a malformed weight says nothing
    ("application/json;q=0.5;level=1", "application/json", 0.5),  # parameters after q are extensions
    ("garbage, /json, */json", "application/json", 1.0),  # nothing usable: as if absent
    ("", "application/json", 1.0),
    ("", "text/event-stream", 0.0),  # absent: application/json only, as the GraphQL over HTTP spec says
])
def test_accept_quality(header: str, media_type: str, quality: float) -> None:
    assert Accept.of(header).quality(media_type) == quality


def test_accept_without_streaming_types_keeps_the_rest_as_written() -> None:
    accept = Accept.of(URQL)
    assert accept.without("text/event-stream", "multipart/mixed") == \
        b"application/graphql-response+json, application/graphql+json, application/json"
    assert Accept.of("text/event-stream").without("text/event-stream") == b"application/json"


def test_graphql_response_json_is_preferred_only_when_named() -> None:
    assert Accept.of(URQL).prefers_graphql_response_json()
    assert Accept.of("application/json, application/graphql-response+json").prefers_graphql_response_json()
    assert not Accept.of("application/graphql-response+json;q=0.5, application/json").prefers_graphql_response_json()
    assert not Accept.of("*/*").prefers_graphql_response_json()
    assert not Accept.of("application/graphql-response+json;q=0").prefers_graphql_response_json()
