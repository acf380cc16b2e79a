"""graphql-core's executor, made fit for subscriptions that run for days.

graphql-core 3.3 executes each subscription event with a shallow copy of the subscription's
executor, so the copies share its memo dictionaries, and those are keyed (since 3.3.1) by the
identity of lists built anew for every event: each event adds about 1 KB that stays until the
subscription ends (a subscription with a nested selection that receives a million messages
holds about a gigabyte; tests/overrides/test_graphql_executor.py reproduces it). Each event's executor gets
its own memos here, dropped with it. The copy itself is also made directly instead of
through copy.copy's generic reduce protocol, which cost about 5% of the server's time per
delivered message.

Each event also executes the subscription's root field again, and graphql-core coerces its
arguments again (for `joinChatRooms(rooms: [{id: $room}])`, building the input objects)
only to hand them to Strawberry's event resolver, which returns the event and ignores them:
about 7% of the time per delivered message. Per-event executions see the root subscription
fields without arguments, when nothing else could see them (no middleware, that is no
extension with a `resolve` hook). The arguments were coerced, and checked, when the
subscription started.

A subscription event's executor sees a copy of the schema (the one without arguments): a
copy of its attributes, so that resolvers still find the served Strawberry schema on it as
`info.schema` (graphql-core's own copy of a schema rebuilds it from its types, without it).

Each subscription keeps its executor, whose 32 attributes are past CPython's limit of 30 for
a key-sharing instance dictionary: the dictionary alone took 1.6 KB. A few rarely read
attributes live in slots here, which brings it back to a shared-key dictionary of about 0.3 KB.

The memos are graphql-core's private attributes, and the per-event executor its
`build_per_event_executor`, hence the gates: the leak fix (a fix, since the leak is what a
long-lived subscription would meet) for graphql-core 3.3.1 and later 3.3 releases, the rest
(fast paths, and Strawberry's event resolver recognised by its qualified name) for the
releases they were written for. Outside them, graphql-core's executor serves as it is.
"""

from __future__ import annotations

import copy
import functools
from typing import Any, TypeVar

from graphql import GraphQLField, GraphQLObjectType, GraphQLSchema

from . import Kind, graphql_shared_events, override

LEAK_GATE = override(
    "graphql-core-per-event-memos", Kind.FIX, {"graphql-core": ">=3.3.1,<3.4"},
    stock="graphql-core's executor (about 1 KB kept per subscription event until the subscription ends)",
)
LEAN_GATE = override(
    "graphql-core-lean-executor", Kind.FAST_PATH,
    {"graphql-core": ">=3.3.1,<3.4", "strawberry-graphql": ">=0.341,<0.342"},
    stock="graphql-core's executor copies and its coercion of the root field's arguments for every event",
)

_T = TypeVar("_T")

# Memo attributes of graphql-core's Executor and IncrementalExecutor, per execution: one
# filled by any nested selection, the others only by @defer and @stream.
FILLED_BY_EVERY_EVENT = "_relevant_sub_fields"
FILLED_BY_DEFER_AND_STREAM = ("_stream_usages", "_initial_execution_plans", "_deferred_execution_plans")

# Executor attributes kept in slots rather than the instance dictionary (set once, by
# graphql-core's and Strawberry's __init__, and read rarely). CPython shares an instance
# dictionary's keys between instances only up to 30 keys.
SLOTTED = ("abort_signal", "hooks", "hide_suggestions", "enable_early_execution",
           "async_work_finished_hook_task", "defer_usage_set", "operation_extensions",
           "subscribe_field_resolver")


STRAWBERRY_EVENT_RESOLVER = "GraphQLCoreConverter.from_field.<locals>.<lambda>"  # lambda event, *_, **__: event


def shallow_copy(obj: _T) -> _T:
    """A new object with the same attributes (graphql-core's GraphQLSchema.__copy__ rebuilds
    the schema, and loses the attributes Strawberry and this module set on it)."""
    clone = object.__new__(type(obj))
    clone.__dict__.update(obj.__dict__)
    return clone


def returns_the_event(field: GraphQLField) -> bool:
    """Whether `field`'s resolver, run for each event, ignores its arguments."""
    resolve = field.resolve
    return (getattr(resolve, "__module__", None) == "strawberry.schema.schema_converter"
            and getattr(resolve, "__qualname__", None) == STRAWBERRY_EVENT_RESOLVER)


# Kept on the schema itself, so it goes with it: the copy refers back to the schema (through
# Strawberry's schema in its extensions), which would keep it alive in a weak-key dictionary.
EVENT_SCHEMA_ATTRIBUTE = "_gqlchannels_event_schema"


def event_schema(schema: GraphQLSchema) -> GraphQLSchema:
    """`schema` as per-event executions see it: root subscription fields whose resolver
    returns the event have no arguments to coerce. One per schema, shared by all events."""
    cached = getattr(schema, EVENT_SCHEMA_ATTRIBUTE, None)
    if cached is not None:
        return cached
    subscription_type = schema.subscription_type
    lean: dict[str, GraphQLField] = {}
    if subscription_type is not None:
        for name, field in subscription_type.fields.items():
            if field.args and returns_the_event(field):
                lean[name] = copy.copy(field)
                lean[name].args = {}
    seen = shallow_copy(schema) if lean else schema
    if lean:
        get_field = type(schema).get_field

        def get_field_for_events(parent_type: GraphQLObjectType, field_name: str) -> GraphQLField | None:
            if parent_type is subscription_type and field_name in lean:
                return lean[field_name]
            return get_field(seen, parent_type, field_name)

        seen.get_field = get_field_for_events  # type: ignore[method-assign]
    setattr(schema, EVENT_SCHEMA_ATTRIBUTE, seen)
    setattr(seen, EVENT_SCHEMA_ATTRIBUTE, seen)  # asked again with the copy: the copy
    return seen


def executor_class(base: type, *, share_events: bool = False) -> type:
    """`base` (Strawberry's executor class, or the user's own) with what may serve of this
    module: the per-event memos, and the lean copies and event schema, and (when the caller
    knows no extension changes results, `share_events`) one execution of an event for all
    subscribers who would get the same result (graphql_shared_events); or `base` itself."""
    share = share_events and lean_events_shareable()
    return _executor_class(base, LEAK_GATE.active, LEAN_GATE.active, share)


def lean_events_shareable() -> bool:
    return LEAN_GATE.active and graphql_shared_events.GATE.active


_UNSET = object()
SHARE_SLOT = "_gqlchannels_share"  # a subscription's (event key, operation key), once computed


@functools.cache
def _executor_class(base: type, memos: bool, lean: bool, share: bool = False) -> type:
    if not memos and not lean:
        return base
    # Names a base class already defines (as a slot or a class default) are left to it.
    slotted = tuple(name for name in SLOTTED if not any(name in vars(k) for k in base.__mro__)) if lean else ()
    if share:
        slotted += (SHARE_SLOT,)

    def build_per_event_executor(self: Any, payload: Any) -> Any:
        shared = record_as = None
        if share:
            try:
                shared = getattr(self, SHARE_SLOT)
            except AttributeError:
                shared = graphql_shared_events.subscription_share(self, returns_the_event)
                setattr(self, SHARE_SLOT, shared)
            if shared:
                record_as = graphql_shared_events.replay_or_key(shared, self.operation, payload)
                if isinstance(record_as, graphql_shared_events.Replay):
                    return record_as
        executor = base.build_per_event_executor(self, payload)
        if memos:
            if hasattr(executor, FILLED_BY_EVERY_EVENT):
                # Never the subscription's own: whatever fills it would stay as long as the subscription.
                setattr(executor, FILLED_BY_EVERY_EVENT, {})
            for name in FILLED_BY_DEFER_AND_STREAM:
                memo = getattr(self, name, None)
                # An empty memo can stay shared (nothing leaks from it yet; most stay empty unless
                # @defer or @stream is used); once an event has filled it, the next ones get new ones.
                if memo:
                    setattr(executor, name, type(memo)())
        if lean:
            manager = executor.middleware_manager
            if manager is None or not manager.middlewares:  # a resolve hook would see the arguments
                executor.schema = event_schema(executor.schema)
        if record_as is not None:
            return graphql_shared_events.recording(shared, record_as, executor)
        return executor

    def __copy__(self: Any) -> Any:
        clone = object.__new__(type(self))
        clone.__dict__.update(self.__dict__)
        for name in slotted:  # once per event: no context manager here
            value = getattr(self, name, _UNSET)
            if value is not _UNSET:  # unset in the original: unset in the copy
                setattr(clone, name, value)
        return clone

    namespace: dict[str, Any] = {
        "__slots__": slotted, "build_per_event_executor": build_per_event_executor, "__module__": __name__,
        "__doc__": "Executes each subscription event with its own memos.",
    }
    if lean:
        namespace["__copy__"] = __copy__
    return type(f"PerEventMemo{base.__name__}", (base,), namespace)
