"""Which subscriptions' events can be shared, and the keys that tell two events apart."""

from __future__ import annotations

import datetime
import decimal

import pytest
from graphql import parse

from gqlchannels.overrides.graphql_executor import returns_the_event
from gqlchannels.overrides.graphql_shared_events import (
    MAX_PLANS,
    NotShareable,
    SharedResults,
    event_key,
    frozen,
    leaf_key,
)
from tests.support.shared_events_schema import Author, Mood, Post, schema


def key_of(document: str):  # noqa: ANN201
    parsed = parse(document)
    operation = parsed.definitions[0]

    class Details:  # as graphql-core's FragmentDetails
        def __init__(self, definition: object) -> None:
            self.definition = definition

    fragments = {d.name.value: Details(d) for d in parsed.definitions[1:]}
    return event_key(schema._schema, operation, fragments, returns_the_event)


def post(**changes: object) -> Post:
    fields = dict(id="1", text="t", likes=1, score=0.5, mood=Mood.HAPPY, tags=["a"], author=Author(name="n"))
    return Post(**{**fields, **changes})  # type: ignore[arg-type]


@pytest.mark.parametrize("document", [
    'subscription { posts(topic: "a") { id text likes score mood tags author { name } } }',
    'subscription { posts(topic: "a") { words: text alias2: text __typename } }',
    'subscription { posts(topic: "a") { ...P } } fragment P on Post { id author { ...A } } fragment A on Author { name }',
    'subscription { posts(topic: "a") { ... on Post { id } ... { text } } }',
    'subscription($full: Boolean!) { posts(topic: "a") { id text @include(if: $full) } }',
])
def test_plain_selections_are_shareable(document: str) -> None:
    assert key_of(document) is not None


@pytest.mark.parametrize("document", [
    'subscription { posts(topic: "a") { id secret } }',  # a resolver of its own
    'subscription { posts(topic: "a") { author { viewer } } }',  # reads the user
    'subscription { posts(topic: "a") { ...P } } fragment P on Post { author { viewer } }',
])
def test_a_field_with_a_resolver_anywhere_is_not(document: str) -> None:
    assert key_of(document) is None


def test_the_key_reads_every_selected_value_and_the_types() -> None:
    key = key_of('subscription { posts(topic: "a") { id text score tags author { name } } }')
    assert key(post()) == key(post(likes=2))  # likes is not selected
    assert key(post()) != key(post(text="u"))
    assert key(post()) != key(post(author=Author(name="m")))
    assert key(post()) != key(post(tags=["a", "b"]))
    assert key(post(score=0.0)) != key(post(score=-0.0))

    class OtherPost(Post):
        pass

    assert key(post()) != key(OtherPost(**vars(post())))


@pytest.mark.parametrize("a, b", [
    (1, True), (1, 1.0), (0.0, -0.0), ("1", 1),
    (datetime.datetime(2026, 1, 1, 12, tzinfo=datetime.timezone.utc),
     datetime.datetime(2026, 1, 1, 13, tzinfo=datetime.timezone(datetime.timedelta(hours=1)))),
    (decimal.Decimal("1.0"), decimal.Decimal("1.00")),
])
def test_values_python_calls_equal_but_json_writes_apart_have_different_keys(a: object, b: object) -> None:
    assert leaf_key(a) != leaf_key(b)


@pytest.mark.parametrize("value", [object(), {"a": 1}, iter([1]), b"bytes"])
def test_values_of_unknown_kinds_are_not_shared(value: object) -> None:
    with pytest.raises(NotShareable):
        leaf_key(value)


def test_an_event_whose_list_is_an_iterator_is_executed_not_read() -> None:
    key = key_of('subscription { posts(topic: "a") { tags } }')
    with pytest.raises(NotShareable):
        key(post(tags=iter(["a"])))


def test_variables_key_by_value_and_type() -> None:
    assert frozen({"a": [1, {"b": True}]}) == frozen({"a": [1, {"b": True}]})
    assert frozen({"a": 1}) != frozen({"a": True})


def test_an_operation_token_stands_for_one_operation_and_variables_never_reused() -> None:
    results = SharedResults()
    first = results.token((1, ("room", "a")))
    assert results.token((1, ("room", "a"))) == first  # every subscriber of it: the same
    assert results.token((1, ("room", "b"))) != first
    given = {first}
    for n in range(MAX_PLANS + 1):  # past the bound, the table starts again
        given.add(results.token((2 + n, ())))
    again = results.token((1, ("room", "a")))
    assert again not in given  # a new number: earlier subscriptions' numbers stand for theirs alone
    assert results.token((1, ("room", "a"))) == again


def test_one_replay_for_every_subscriber_given_a_result() -> None:
    results = SharedResults()
    operation, result = object(), object()
    results.put(("key",), operation, result)
    replay = results.get(("key",), operation)
    assert replay is not None and replay.execute_operation() is result
    assert results.get(("key",), operation) is replay
    assert results.get(("key",), object()) is None  # another operation with the same key: none
