"""Subscribers running the same operation share one execution of each event when what they
select depends only on the event, and never when it does not: each still receives exactly
what its own execution would give it."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from typing import Any

import httpx
import pytest

from gqlchannels import overrides
from tests.support.gql_clients import Subscriber
from tests.support.server import ServerProcess, metric

APP = "tests.support.shared_events_schema:schema"
SHARED = "gqlchannels_subscription_events_shared_total"
PLAIN = """subscription($topic: String!) {
  posts(topic: $topic) { id text likes score mood tags author { name } }
}"""
JOINED = {"id": "0", "text": "joined", "likes": 0, "score": 0.0, "mood": "HAPPY", "tags": [], "author": {"name": "server"}}


@pytest.fixture(scope="module")
def server() -> Iterator[ServerProcess]:
    with ServerProcess(APP, "--auth", "tests.support.shared_events_schema:auth") as running:
        yield running


def sharing() -> bool:
    """Whether shared execution serves in this run (a fast path: not with GQLCHANNELS_FAST_PATHS=0)."""
    overrides.declare_all()
    return overrides.REGISTRY["graphql-core-shared-events"].active and overrides.REGISTRY[
        "graphql-core-lean-executor"].active


class Subscribers:
    def __init__(self, server: ServerProcess) -> None:
        self.server = server
        self.open: list[Subscriber] = []

    async def join(self, user: str, query: str, variables: dict[str, Any]) -> Subscriber:
        subscriber = await Subscriber.open(self.server.ws_url, additional_headers={
            "Authorization": f"Bearer {user}-token"})
        self.open.append(subscriber)
        await subscriber.subscribe(query, variables)
        joined = await subscriber.recv()  # the joined post: the group is joined
        assert joined["type"] == "next" and joined["payload"].get("data") != {"posts": None}, joined
        return subscriber

    def post(self, topic: str, **fields: Any) -> None:
        types = {"id": "ID!", "text": "String!", "likes": "Int", "score": "Float", "tags": "[String!]",
                 "author": "String"}
        declared = "".join(f", ${name}: {types[name]}" for name in fields)
        arguments = "".join(f", {name}: ${name}" for name in fields)
        response = httpx.post(f"{self.server.url}/graphql", timeout=10,
                              headers={"Authorization": "Bearer alice-token"}, json={
                                  "query": f"mutation($topic: String!{declared}) {{ post(topic: $topic{arguments}) }}",
                                  "variables": {"topic": topic, **fields}})
        assert response.json() == {"data": {"post": True}}, response.text


@pytest.fixture
async def subscribers(server: ServerProcess) -> AsyncIterator[Subscribers]:
    group = Subscribers(server)
    yield group
    for subscriber in group.open:
        await subscriber.ws.close()


async def test_same_operation_and_event_is_executed_once_for_all(
        server: ServerProcess, subscribers: Subscribers) -> None:
    everyone = [await subscribers.join(user, PLAIN, {"topic": "plain"}) for user in ("alice", "bob", "alice")]
    before = metric(server, SHARED)
    subscribers.post("plain", id="1", text="hello", likes=3, score=0.5, tags=["a", "b"])
    expected = {"posts": {"id": "1", "text": "hello", "likes": 3, "score": 0.5, "mood": "HAPPY",
                          "tags": ["a", "b"], "author": {"name": "carol"}}}
    assert [await subscriber.next_data() for subscriber in everyone] == [expected] * 3
    # One execution, given to the two others; none shared with GQLCHANNELS_FAST_PATHS=0.
    assert metric(server, SHARED) - before == (2 if sharing() else 0)


async def test_equal_events_with_different_values_are_not_confused(subscribers: Subscribers) -> None:
    alice = await subscribers.join("alice", PLAIN, {"topic": "values"})
    bob = await subscribers.join("bob", PLAIN, {"topic": "values"})
    # Values Python calls equal but JSON writes differently: 0.0 and -0.0; then 1 and 1.0.
    for score, likes in ((0.0, 1), (-0.0, 1), (1.0, 1), (1.0, None)):
        subscribers.post("values", id="2", text="same", likes=likes, score=score)
        for subscriber in (alice, bob):
            data = (await subscriber.recv())["payload"]["data"]["posts"]
            assert (repr(data["score"]), data["likes"]) == (repr(score), likes)


async def test_a_field_that_reads_the_user_is_executed_for_each_subscriber(
        server: ServerProcess, subscribers: Subscribers) -> None:
    query = "subscription { posts(topic: \"viewer\") { text author { name viewer } } }"
    alice = await subscribers.join("alice", query, {})
    bob = await subscribers.join("bob", query, {})
    before = metric(server, SHARED)
    subscribers.post("viewer", id="3", text="hi", author="dave")
    assert await alice.next_data() == {"posts": {"text": "hi", "author": {"name": "dave", "viewer": "alice reads dave"}}}
    assert await bob.next_data() == {"posts": {"text": "hi", "author": {"name": "dave", "viewer": "bob reads dave"}}}
    assert metric(server, SHARED) - before == 0


async def test_variables_that_change_the_selection_are_part_of_what_is_shared(subscribers: Subscribers) -> None:
    query = "subscription($topic: String!, $full: Boolean!) { posts(topic: $topic) { id text @include(if: $full) } }"
    full = await subscribers.join("alice", query, {"topic": "vars", "full": True})
    short = await subscribers.join("alice", query, {"topic": "vars", "full": False})
    subscribers.post("vars", id="4", text="long text")
    assert await full.next_data() == {"posts": {"id": "4", "text": "long text"}}
    assert await short.next_data() == {"posts": {"id": "4"}}


async def test_aliases_fragments_and_typename_come_out_as_each_asked(subscribers: Subscribers) -> None:
    aliased = await subscribers.join("alice", 'subscription { posts(topic: "shapes") { words: text id } }', {})
    fragment = await subscribers.join("bob", """subscription { posts(topic: "shapes") { ...P author { __typename } } }
        fragment P on Post { __typename id text }""", {})
    inline = await subscribers.join("bob", """subscription { posts(topic: "shapes") { ... on Post { text } tags } }""", {})
    subscribers.post("shapes", id="5", text="x", tags=["t"])
    assert await aliased.next_data() == {"posts": {"words": "x", "id": "5"}}
    assert await fragment.next_data() == {"posts": {"__typename": "Post", "id": "5", "text": "x",
                                                    "author": {"__typename": "Author"}}}
    assert await inline.next_data() == {"posts": {"text": "x", "tags": ["t"]}}


async def test_masked_errors_reach_each_subscriber_and_never_a_shared_result(
        server: ServerProcess, subscribers: Subscribers) -> None:
    query = 'subscription { posts(topic: "errors") { id secret } }'
    alice = await subscribers.join("alice", query, {})
    bob = await subscribers.join("bob", query, {})
    before = metric(server, SHARED)
    subscribers.post("errors", id="6", text="x")
    for subscriber in (alice, bob):
        message = await subscriber.recv()
        assert message["id"] == subscriber.op_id
        assert message["payload"]["data"] is None
        assert [error["message"] for error in message["payload"]["errors"]] == ["Unexpected error."]
        assert "hunter2" not in str(message)
    assert metric(server, SHARED) - before == 0


async def test_each_subscriber_gets_its_own_operation_id(subscribers: Subscribers) -> None:
    everyone = [await subscribers.join("alice", PLAIN, {"topic": "ids"}) for _ in range(3)]
    subscribers.post("ids", id="7", text="x")
    for subscriber in everyone:
        message = await subscriber.recv()
        assert (message["type"], message["id"]) == ("next", subscriber.op_id)
