"""One execution of a subscription event for every subscriber who would get the same result.

A group's event reaches each of its subscribers, and graphql-core executes it once for each:
for a chat room of 500, 500 executions of the same selection over equal events. When the
result depends only on the event, they are all the same, so here the first subscriber's
result is kept, briefly, and given to the others.

When a result depends only on the event is decidable from the schema and the operation:
every field selected under the subscription's root field is one Strawberry resolves by
reading an attribute of its parent (no resolver of its own, no permission classes, no field
extensions: Strawberry marks those resolvers `_is_default`), the root field returns the event
itself (Strawberry's event resolver), every selected type is an object type (no interface or
union to resolve), and the subscription runs no middleware (no schema extension with a
`resolve` hook). A subscription that asks for anything else (a field with a resolver, which
may read the context or the user) is executed for each subscriber as before.

Two subscribers share a result only when they run the same operation (the same parsed
document, which the server's document cache gives every subscriber sending the same text),
with the same variables, on the same served schema, and their events are equal as far as
the selection reads them: the key of an event is built by reading the same attributes the
execution would read, with each value's type (1 and True, or two classes with the same
fields, are different keys), and floats by their text (0.0 and -0.0 serialize differently).
Only values whose equality means equal JSON take part: strings, integers, booleans, None,
floats, enum members, and dates, times, decimals and UUIDs by their exact repr; a list or a
tuple by its items. Anything else (a generator, a dict, another class as a leaf value, an
attribute that raises) makes that event execute per subscriber. Results with errors are
never shared: each subscriber's execution reports its own.

A shared result's `data` is one object given to every subscriber: nothing may change it
after execution (the server's transports only encode it).

This hooks graphql-core's per-event executor (`build_per_event_executor`), reads its
private state (operation, fragments, coerced variables, middleware) and Strawberry's
resolver marker, hence the gate: outside these releases, or with --no-fast-paths, every
event is executed per subscriber.
"""

from __future__ import annotations

import datetime
import decimal
import enum
import uuid
from collections.abc import Callable
from typing import Any

from graphql import (
    FieldNode,
    FragmentSpreadNode,
    GraphQLEnumType,
    GraphQLList,
    GraphQLNonNull,
    GraphQLObjectType,
    GraphQLScalarType,
    GraphQLSchema,
    InlineFragmentNode,
    OperationDefinitionNode,
    SelectionSetNode,
)

from . import Kind, override

GATE = override(
    "graphql-core-shared-events", Kind.FAST_PATH,
    {"graphql-core": ">=3.3.1,<3.4", "strawberry-graphql": ">=0.341,<0.342"},
    stock="graphql-core executes each event once for each subscriber",
)

MAX_RESULTS = 256  # recent results kept; an event's fan-out reads them within moments
MAX_PLANS = 512  # (schema, operation) pairs whose plan is kept


class NotShareable(Exception):
    """This operation, or this event, must be executed per subscriber."""


Key = Callable[[Any], Any]  # an event (or a value in it) to a hashable key


_EXACT_LEAVES = frozenset({str, int, bool})
_REPR_LEAVES = frozenset({datetime.datetime, datetime.date, datetime.time, datetime.timedelta,
                          decimal.Decimal, uuid.UUID})


def leaf_key(value: Any) -> Any:
    if value is None:
        return None
    kind = type(value)
    if kind in _EXACT_LEAVES:
        return (kind, value)
    if kind is float or kind in _REPR_LEAVES:
        return (kind, repr(value))
    if isinstance(value, enum.Enum):
        return (kind, value.name)
    raise NotShareable


def list_key(item_key: Key) -> Key:
    def key(value: Any) -> Any:
        if value is None:
            return None
        if type(value) not in (list, tuple):  # an iterator would be consumed by reading it
            raise NotShareable
        return tuple([item_key(item) for item in value])  # a list comprehension: no generator per value
    return key


def object_key(fields: tuple[tuple[str, Key], ...]) -> Key:
    def key(value: Any) -> Any:
        if value is None:
            return None
        try:
            return (type(value), tuple([field_key(getattr(value, name)) for name, field_key in fields]))
        except NotShareable:
            raise
        except Exception:  # an attribute that raises: the execution reports it, per subscriber
            raise NotShareable from None
    return key


class _Planner:
    """Builds the key of an operation's events from its selections, or raises NotShareable."""

    def __init__(self, fragments: dict[str, Any]) -> None:
        self.fragments = fragments

    def for_type(self, type_: Any, selection_sets: list[SelectionSetNode]) -> Key:
        if isinstance(type_, GraphQLNonNull):
            return self.for_type(type_.of_type, selection_sets)
        if isinstance(type_, GraphQLList):
            return list_key(self.for_type(type_.of_type, selection_sets))
        if isinstance(type_, (GraphQLScalarType, GraphQLEnumType)):
            return leaf_key
        if isinstance(type_, GraphQLObjectType):
            return self.for_object(type_, selection_sets)
        raise NotShareable  # an interface or a union: its type is resolved per value

    def for_object(self, type_: GraphQLObjectType, selection_sets: list[SelectionSetNode]) -> Key:
        # python attribute -> (field type, the selection sets under it); directives such as
        # @skip are ignored: the key then reads more than the execution may, never less.
        read: dict[str, tuple[Any, list[SelectionSetNode]]] = {}
        for node in self.fields_of(type_, selection_sets, set()):
            name = node.name.value
            if name == "__typename":
                continue  # the object type's name: the key has the value's type
            field = type_.fields.get(name)
            if field is None or not getattr(field.resolve, "_is_default", False):
                raise NotShareable  # a resolver of its own may read the context, the user, the time
            definition = field.extensions.get("strawberry-definition")
            attribute = getattr(definition, "python_name", None)
            if not isinstance(attribute, str):
                raise NotShareable
            _, nested = read.setdefault(attribute, (field.type, []))
            if node.selection_set is not None:
                nested.append(node.selection_set)
        return object_key(tuple((attribute, self.for_type(field_type, nested))
                                for attribute, (field_type, nested) in read.items()))

    def fields_of(self, type_: GraphQLObjectType, selection_sets: list[SelectionSetNode],
                  spread: set[str]) -> list[FieldNode]:
        fields: list[FieldNode] = []
        for selection_set in selection_sets:
            for selection in selection_set.selections:
                if isinstance(selection, FieldNode):
                    fields.append(selection)
                    continue
                if isinstance(selection, FragmentSpreadNode):
                    name = selection.name.value
                    if name in spread:
                        continue
                    spread.add(name)
                    # graphql-core's FragmentDetails: the definition, and its variable signatures
                    fragment = getattr(self.fragments.get(name), "definition", None)
                    if fragment is None:
                        raise NotShareable
                    condition, selections = fragment.type_condition, fragment.selection_set
                elif isinstance(selection, InlineFragmentNode):
                    condition, selections = selection.type_condition, selection.selection_set
                else:
                    raise NotShareable
                if condition is not None and condition.name.value != type_.name:
                    raise NotShareable  # a fragment on an interface or another type
                fields.extend(self.fields_of(type_, [selections], spread))
        return fields


def event_key(schema: GraphQLSchema, operation: OperationDefinitionNode, fragments: dict[str, Any],
              returns_the_event: Callable[[Any], bool]) -> Key | None:
    """The key of this operation's events, or None when they must be executed per subscriber."""
    subscription_type = schema.subscription_type
    if subscription_type is None:
        return None
    planner = _Planner(fragments)
    try:
        roots = [node for node in planner.fields_of(subscription_type, [operation.selection_set], set())
                 if node.name.value != "__typename"]
        if len({node.name.value for node in roots}) != 1:
            return None
        field = subscription_type.fields.get(roots[0].name.value)
        if field is None or not returns_the_event(field):
            return None
        nested = [node.selection_set for node in roots if node.selection_set is not None]
        return planner.for_type(field.type, nested)
    except Exception:  # NotShareable, or a document shaped unlike any written for: executed as before
        return None


def frozen(value: Any) -> Any:
    """Coerced variable values as a hashable key (NotShareable if a value cannot be one)."""
    if isinstance(value, dict):
        return (dict, tuple(sorted((name, frozen(item)) for name, item in value.items())))
    if isinstance(value, (list, tuple)):
        return (list, tuple(frozen(item) for item in value))
    return leaf_key(value)


class SharedResults:
    """One served schema's recent results of events, by operation, variables and event key,
    and its operations' plans. Kept on the schema itself, so that they go with it."""

    def __init__(self) -> None:
        # The operation is kept in each entry, so that its id in the key cannot be reused by
        # another while the entry lives. Each entry's result is kept as its Replay, one for
        # every subscriber given it.
        self.results: dict[tuple, tuple[Any, Replay]] = {}
        self.plans: dict[int, tuple[Any, Key | None]] = {}
        # (operation id, variables) -> a number standing for them in the results' keys, got
        # once per subscription: a key is then hashed and compared without them.
        self.tokens: dict[tuple, int] = {}
        self.next_token = 0

    def plan(self, schema: GraphQLSchema, operation: Any, fragments: dict[str, Any],
             returns_the_event: Callable[[Any], bool]) -> Key | None:
        found = self.plans.get(id(operation))
        if found is not None and found[0] is operation:
            return found[1]
        key = event_key(schema, operation, fragments, returns_the_event)
        if len(self.plans) >= MAX_PLANS:
            self.plans.clear()
        self.plans[id(operation)] = (operation, key)
        return key

    def token(self, operation_key: tuple) -> int:
        """The number standing for `operation_key`. Numbers are never reused (past MAX_PLANS
        keys, the table starts again with new ones: later subscriptions then do not share with
        earlier ones, which is all it costs); a number given to an operation whose id is later
        reused by another is safe, since each result's entry keeps its operation."""
        found = self.tokens.get(operation_key)
        if found is None:
            if len(self.tokens) >= MAX_PLANS:
                self.tokens.clear()
            found = self.tokens[operation_key] = self.next_token
            self.next_token += 1
        return found

    def get(self, key: tuple, operation: Any) -> Replay | None:
        found = self.results.get(key)
        if found is not None and found[0] is operation:
            return found[1]
        return None

    def put(self, key: tuple, operation: Any, result: Any) -> None:
        if len(self.results) >= MAX_RESULTS:
            del self.results[next(iter(self.results))]
        self.results[key] = (operation, Replay(result))


RESULTS_ATTRIBUTE = "_gqlchannels_shared_results"


def results_of(schema: GraphQLSchema) -> SharedResults:
    found = getattr(schema, RESULTS_ATTRIBUTE, None)
    if found is None:
        found = SharedResults()
        setattr(schema, RESULTS_ATTRIBUTE, found)
    return found


_count_replay: Callable[[], None] = lambda: None


def count_replays(callback: Callable[[], None]) -> None:
    """Call `callback` each time a subscriber is given another's result (the server's metric)."""
    global _count_replay
    _count_replay = callback


class Replay:
    """Stands for a per-event executor whose result is already known."""

    __slots__ = ("result",)

    def __init__(self, result: Any) -> None:
        self.result = result

    def execute_operation(self, *_: Any, **__: Any) -> Any:
        return self.result


class Recording:
    """A per-event executor whose result, if it has no errors, is kept for the others."""

    __slots__ = ("executor", "key", "results")

    def __init__(self, executor: Any, key: tuple, results: SharedResults) -> None:
        self.executor = executor
        self.key = key
        self.results = results

    def execute_operation(self, *args: Any, **kwargs: Any) -> Any:
        executor = self.executor
        result = executor.execute_operation(*args, **kwargs)
        if not executor.is_awaitable(result) and not result.errors and result.data is not None:
            self.results.put(self.key, executor.operation, result)
        return result

    def __getattr__(self, name: str) -> Any:  # the rest is the executor's
        return getattr(self.executor, name)


UNSHAREABLE = ()  # what a subscription executor keeps when its events cannot be shared


def subscription_share(executor: Any, returns_the_event: Callable[[Any], bool]) -> tuple:
    """(event key, the token of its operation and variables, the schema's results) for a
    subscription's executor, or UNSHAREABLE."""
    manager = executor.middleware_manager
    if manager is not None and manager.middlewares:
        return UNSHAREABLE  # a resolve hook sees every field, and may see the context
    results = results_of(executor.schema)
    key = results.plan(executor.schema, executor.operation, executor.fragments, returns_the_event)
    if key is None:
        return UNSHAREABLE
    values = executor.variable_values  # graphql-core's VariableValues: the sources and the coerced values
    try:
        variables = frozen(getattr(values, "coerced", None) or {})
    except NotShareable:
        return UNSHAREABLE
    return key, results.token((id(executor.operation), variables)), results


def replay_or_key(share: tuple, operation: Any, payload: Any) -> Replay | tuple | None:
    """For one subscriber's event: a Replay of the result another subscriber's execution left,
    or the key to record this subscriber's result under (see `recording`), or None when the
    event is executed as before. Asked before the per-event executor is built, which a
    replay does not need."""
    key_of, operation_key, results = share
    try:
        key = (operation_key, key_of(payload))
    except Exception:  # NotShareable, or a value whose hash fails: executed as before, errors and all
        return None
    replay = results.get(key, operation)
    if replay is not None:
        _count_replay()
        return replay
    return key


def recording(share: tuple, key: tuple, executor: Any) -> Recording:
    """`executor`, keeping its result under `key` for the other subscribers."""
    return Recording(executor, key, share[2])
