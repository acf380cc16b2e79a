"""Hostile GraphQL documents, sent to a real server as an attacker would: fragments that
multiply, thousands of same-named fields, long fragment cycles; and what resolvers and error
messages may give away when introspection is off."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from gqlchannels.config.limits import Limits
from gqlchannels.graphql.extension import with_server_extensions
from tests.support import documents_schema
from tests.support.gql_clients import Subscriber, graphql_post
from tests.support.server import ServerProcess, clean_env

APP = "tests.support.documents_schema:schema"
NOT_STALLED = 5  # seconds: generous for a loaded 2-core machine; the attacks took 8 to 25 s


@pytest.fixture(scope="module")
def served() -> Iterator[ServerProcess]:
    with ServerProcess(APP) as server:
        yield server


@pytest.fixture(scope="module")
def closed() -> Iterator[ServerProcess]:
    with ServerProcess(APP, "--no-introspection", "--max-depth", "3") as server:
        yield server


def fragment_bomb(levels: int, leaf: str) -> str:
    """Each fragment spreads the next twice: 2**levels spreads of the last from 1 KB."""
    return " ".join(["{ ...F0 }",
                     *(f"fragment F{n} on Query {{ ...F{n + 1} ...F{n + 1} }}" for n in range(levels)),
                     f"fragment F{levels} on Query {{ {leaf} }}"])


def same_named_fields(count: int) -> str:
    return "{ " + " ".join(f'hello(name: "k-{n}")' for n in range(count)) + " }"


async def answers_while_attacked(server: ServerProcess, attack: str, attackers: int) -> list[dict[str, Any]]:
    """Send `attack` from several connections at once and ask /healthz on another; both within
    NOT_STALLED seconds."""
    async with httpx.AsyncClient(timeout=60) as client:
        attacks = [asyncio.create_task(client.post(f"{server.url}/graphql", json={"query": attack}))
                   for _ in range(attackers)]
        started = time.monotonic()
        health = await client.get(f"{server.url}/healthz")
        assert health.status_code == 200
        assert time.monotonic() - started < NOT_STALLED, "/healthz waited for the attack"
        responses = await asyncio.wait_for(asyncio.gather(*attacks), NOT_STALLED)
    assert all(response.status_code == 200 for response in responses)
    return [response.json() for response in responses]


async def test_fragments_that_multiply_are_validated_at_once(served: ServerProcess) -> None:
    for answer in await answers_while_attacked(served, fragment_bomb(20, "hello"), attackers=2):
        assert answer == {"data": {"hello": "Hello, world!"}}  # a valid document, executed


async def test_aliases_that_multiply_are_counted_at_once(served: ServerProcess) -> None:
    for answer in await answers_while_attacked(served, fragment_bomb(20, "a: hello"), attackers=2):
        assert [error["message"] for error in answer["errors"]] == ["1048576 aliases found. Allowed: 50"]


async def test_same_named_fields_within_the_token_limit_are_refused_before_they_are_compared(
        served: ServerProcess) -> None:
    # 450 fields: about 2,700 tokens, under the default --max-tokens (830, the attack as first
    # measured, is now refused by the token limit itself).
    for answer in await answers_while_attacked(served, same_named_fields(450), attackers=4):
        assert answer["data"] is None
        assert [error["message"] for error in answer["errors"]] == ["450 fields found in one selection set. Allowed: 200"]


async def test_same_named_fields_within_the_cap_stop_at_a_bounded_cost(served: ServerProcess) -> None:
    """150 fields with one name and distinct arguments: 11,175 pairs for the overlap check."""
    for answer in await answers_while_attacked(served, same_named_fields(150), attackers=4):
        assert [error["message"] for error in answer["errors"]] == [
            "The document is too complex to validate: checking that its fields can be merged takes more "
            "comparisons than this server makes. Use fewer fields with the same name in one selection set, "
            "or fewer fragments spread side by side."]


@pytest.mark.parametrize("configured_by", ["option", "variable"])
def test_fields_per_selection_set_can_be_configured(configured_by: str) -> None:
    if configured_by == "option":
        server = ServerProcess(APP, "--max-selection-fields", "3")
    else:
        server = ServerProcess(APP, env=clean_env(GQLCHANNELS_MAX_SELECTION_FIELDS="3"))
    with server:
        assert graphql_post(server.url, "{ a: hello b: hello c: hello }")["data"]["c"] == "Hello, world!"
        refused = graphql_post(server.url, "{ a: hello b: hello ... on Query { c: hello d: hello } }")
        assert refused["data"] is None
        assert refused["errors"][0]["message"] == "4 fields found in one selection set. Allowed: 3"


@pytest.mark.parametrize(("accept", "status"), [("application/json", 200), ("application/graphql-response+json", 400)])
def test_a_cycle_through_300_fragments_is_a_validation_error(served: ServerProcess, accept: str, status: int) -> None:
    cycle = " ".join(["{ ...F0 }", *(f"fragment F{n} on Query {{ ...F{(n + 1) % 300} }}" for n in range(300))])
    logged_before = len(served.log().splitlines())
    response = httpx.post(f"{served.url}/graphql", json={"query": cycle}, headers={"accept": accept}, timeout=30)
    assert response.status_code == status
    answer = response.json()
    assert answer.get("data") is None and (status == 200) == ("data" in answer)
    [error] = answer["errors"]
    assert error["message"] == "Cannot spread fragment 'F0' within itself via 'F1', 'F2', 'F3', 'F4', 'F5', ... (294 more)."
    deadline = time.monotonic() + 10
    while '"POST /graphql' not in served.log().splitlines()[-1] and time.monotonic() < deadline:
        time.sleep(0.05)  # uvicorn's request line comes last
    logged = served.log().splitlines()[logged_before:]
    assert len([line for line in logged if '"POST /graphql' not in line]) <= 1, logged[:5]
    assert "Traceback" not in served.log() and "RecursionError" not in served.log()


NESTED_REFUSALS = [
    ("{ __schema { queryType { name } } }", "GraphQL introspection has been disabled"),
    ("{ node { child { child { child { child { value } } } } } }", "'anonymous' exceeds maximum operation depth of 3"),
    ("{ boom }", "Unexpected error."),
]


@pytest.mark.parametrize(("inner", "refusal"), NESTED_REFUSALS)
def test_a_query_run_through_info_schema_obeys_the_server(closed: ServerProcess, inner: str, refusal: str) -> None:
    outer = graphql_post(closed.url, "query($q: String!) { nested(query: $q) }", {"q": inner})
    assert "hunter2" not in json.dumps(outer)
    nested = json.loads(outer["data"]["nested"])
    assert nested["data"] is None
    assert any(refusal in message for message in nested["errors"]), nested


@pytest.mark.parametrize(("inner", "refusal"), NESTED_REFUSALS)
async def test_a_query_run_through_info_schema_in_a_subscription_obeys_the_server(
        closed: ServerProcess, inner: str, refusal: str) -> None:
    subscriber = await Subscriber.open(closed.ws_url)
    try:
        await subscriber.subscribe("subscription($q: String!) { nested(query: $q) { result } }", {"q": inner})
        nested = json.loads((await subscriber.next_data())["nested"]["result"])
    finally:
        await subscriber.close()
    assert nested["data"] is None
    assert any(refusal in message for message in nested["errors"]), nested


async def test_the_users_own_schema_object_is_left_as_it_was() -> None:
    schema = documents_schema.schema
    extensions = list(schema.extensions)
    with_server_extensions(schema, Limits(max_depth=1), introspection=False, debug=False)
    assert list(schema.extensions) == extensions
    assert schema._schema._strawberry_schema is schema
    result = await schema.execute('{ __schema { queryType { name } } nested(query: "{ node { child { value } } }") }')
    assert result.errors is None
    assert json.loads(result.data["nested"])["data"] == {"node": {"child": {"value": 1}}}  # type: ignore[index]


@pytest.mark.parametrize(("query", "variables"), [
    ("{ helo }", {}),
    ('{ hello(nme: "x") }', {}),
    ("{ paint(shade: CRIMSN) }", {}),
    ("query($s: Shade!) { paint(shade: $s) }", {"s": "CRIMSN"}),
    ("query($p: Parcel!) { send(parcel: $p) }", {"p": {"recipent": "x"}}),
    ('query($p: Parcl!) { send(parcel: {recipient: "x"}) }', {}),
])
def test_no_suggestions_when_introspection_is_off(served: ServerProcess, closed: ServerProcess, query: str,
                                                  variables: dict[str, Any]) -> None:
    suggested = graphql_post(served.url, query, variables)["errors"]
    assert any("Did you mean" in error["message"] for error in suggested), suggested  # they would
    refused = graphql_post(closed.url, query, variables)["errors"]
    assert refused and not any("Did you mean" in error["message"] for error in refused), refused


LONG_NAME = "x" * 3000  # past the length parsed on the event loop: prepared in the worker thread


@pytest.mark.parametrize(("accept", "status"), [("application/json", 200), ("application/graphql-response+json", 400)])
def test_long_documents_get_the_answers_short_ones_get(served: ServerProcess, accept: str, status: int) -> None:
    valid = httpx.post(f"{served.url}/graphql", json={"query": f'{{ hello(name: "{LONG_NAME}") }}'},
                       headers={"accept": accept})
    assert valid.status_code == 200 and valid.json() == {"data": {"hello": f"Hello, {LONG_NAME}!"}}
    for broken in (f'{{ hello(name: "{LONG_NAME}") ', f'{{ hello(name: "{LONG_NAME}") nope }}'):
        refused = httpx.post(f"{served.url}/graphql", json={"query": broken}, headers={"accept": accept})
        assert refused.status_code == status
        assert refused.json()["errors"][0]["message"].startswith(
            ("Syntax Error: Expected Name, found <EOF>.", "Cannot query field 'nope' on type 'Query'."))


@pytest.mark.parametrize("protocol", ["graphql-transport-ws", "graphql-ws"])
async def test_long_documents_over_websocket(served: ServerProcess, protocol: str) -> None:
    subscriber = await Subscriber.open(served.ws_url, protocol)
    try:
        await subscriber.subscribe(f'subscription {{ nested(query: "{{ hello(name: \\"{LONG_NAME}\\") }}") {{ result }} }}', {})
        nested = json.loads((await subscriber.next_data())["nested"]["result"])
        assert nested == {"data": {"hello": f"Hello, {LONG_NAME}!"}, "errors": []}
        assert (await subscriber.recv())["type"] == "complete"
        subscriber.op_id = "2"
        await subscriber.subscribe(f'subscription {{ nested(query: "{LONG_NAME}") ', {})
        await subscriber.expect_syntax_error()  # as for a short document that does not parse
    finally:
        await subscriber.close()
