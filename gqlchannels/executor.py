"""graphql-core's executor, made fit for subscriptions that run for days.

graphql-core 3.3 executes each subscription event with a shallow copy of the subscription's
executor, so the copies share its memo dictionaries, and those are keyed by the identity of
lists built anew for every event: each event adds about 1 KB that stays until the
subscription ends (a subscription with a nested selection that receives a million messages
holds about a gigabyte; tests/test_executor.py reproduces it). Each event's executor gets
its own memos here, dropped with it. The copy itself is also made directly instead of
through copy.copy's generic reduce protocol, which cost about 5% of the server's time per
delivered message.
"""

from __future__ import annotations

import functools
from typing import Any

# Memo attributes of graphql-core's Executor and IncrementalExecutor, per execution.
PER_EXECUTION_MEMOS = ("_relevant_sub_fields", "_stream_usages", "_initial_execution_plans",
                       "_deferred_execution_plans")


@functools.cache
def per_event_memo_executor(base: type) -> type:
    """A subclass of `base` (Strawberry's executor class, or the user's own) with the fix."""

    def build_per_event_executor(self: Any, payload: Any) -> Any:
        executor = base.build_per_event_executor(self, payload)
        for name in PER_EXECUTION_MEMOS:
            memo = getattr(self, name, None)
            # An empty memo can stay shared (nothing leaks from it yet; most stay empty unless
            # @defer or @stream is used); once an event has filled it, the next ones get new ones.
            if memo:
                setattr(executor, name, type(memo)())
        return executor

    def __copy__(self: Any) -> Any:
        clone = object.__new__(type(self))
        clone.__dict__.update(self.__dict__)
        return clone

    return type(f"PerEventMemo{base.__name__}", (base,), {
        "build_per_event_executor": build_per_event_executor, "__copy__": __copy__,
        "__module__": __name__, "__doc__": "Executes each subscription event with its own memos.",
    })
