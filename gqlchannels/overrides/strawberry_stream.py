"""Strawberry's result stream, with a lean path for each subscription event (a fast path).

For every event of every subscription, Strawberry's `Schema._stream` iterates graphql-core's
response stream (`map_source_to_response_event`: an async generator over the resolver's,
calling a coroutine per event), then passes the result through `_handle_execution_result`
(a coroutine, which awaits another for the extensions' results) and an `on_stream_result`
context manager, before yielding it: about a fifth of the server's time per delivered
subscription message (py-spy, bench fan-out), for work that, when no extension defines
`get_results` or `on_stream_result` (the lean extension runner knows) and the result has
no errors, comes down to building Strawberry's ExecutionResult, with the extensions'
results collected so far, and setting it as the context's result.

`lean_stream` is Strawberry's `_stream`, unchanged but for subscriptions: it subscribes as
graphql-core's `subscribe` does (build the executor, create the source event stream), then
reads the resolver's stream itself and executes each event as graphql-core's
`map_source_to_response_event` does. A result without errors, with no such extension, is
yielded as `_handle_execution_result` would have made it; any other goes through
Strawberry's own `_handle_execution_result` and `on_stream_result`, as before. Errors of
the source stream or of an event's execution, closing the source stream when the
subscription ends, and the extensions' operation and executing hooks are as Strawberry's.

It is a copy of Strawberry's `_stream` (with its private helpers) and of graphql-core's
`subscribe`, hence the gate: with other releases, --no-fast-paths, or a schema class that
brings its own `_stream`, Strawberry's serves.
"""

from __future__ import annotations

import contextlib
import types
from collections.abc import AsyncGenerator
from typing import Any

from graphql import ExecutionResult as GraphQLExecutionResult
from graphql import GraphQLError, create_source_event_stream
from graphql.execution.executor_throwing_on_incremental import ExecutorThrowingOnIncremental
from graphql.language import is_subscription_operation_definition_node
from strawberry.exceptions import MissingQueryError
from strawberry.schema import Schema
from strawberry.schema.exceptions import CannotGetOperationTypeError, InvalidOperationTypeError
from strawberry.types.execution import ExecutionResult, PreExecutionError
from strawberry.types.graphql import OperationType
from strawberry.utils.aio import aclosing

from . import Kind, override
from .strawberry_extensions import needs_result_hooks

GATE = override(
    "strawberry-lean-subscription-stream", Kind.FAST_PATH,
    {"strawberry-graphql": ">=0.341,<0.342", "graphql-core": ">=3.3.1,<3.4"},
    stock="Strawberry's result stream (graphql-core's response stream, Strawberry's per-result handling)",
)


def _subscribe(schema: Any, document: Any, *, root_value: Any, variable_values: Any, operation_name: Any,
               context_value: Any, middleware: Any, executor_class: Any = None,
               **custom_context_args: Any) -> Any:
    """graphql-core's `subscribe`, returning (executor, source stream) instead of the response
    stream mapped over it; or the ExecutionResult of errors `subscribe` would return."""
    # As graphql-core's subscribe calls it (a subclass's `build` may read any of them).
    executor = (executor_class or ExecutorThrowingOnIncremental).build(
        schema, document, root_value, context_value, variable_values, operation_name,
        None, None, None, 50, False,  # field, type and subscribe resolvers, max coercion errors, early execution
        middleware=middleware, hide_suggestions=False, **custom_context_args)
    if isinstance(executor, list):
        return GraphQLExecutionResult(None, errors=executor)
    if not is_subscription_operation_definition_node(executor.operation):
        raise GraphQLError("Expected subscription operation.")
    result_or_stream = create_source_event_stream(executor)
    if executor.is_awaitable(result_or_stream):
        async def await_result() -> Any:
            awaited = await result_or_stream
            return (executor, awaited) if executor.is_async_iterable(awaited) else awaited
        return await_result()
    return (executor, result_or_stream) if executor.is_async_iterable(result_or_stream) else result_or_stream


async def lean_stream(self: Any, execution_context: Any, extensions_runner: Any, middleware_manager: Any,
                      execution_context_class: Any = None,
                      operation_extensions: dict[str, Any] | None = None) -> AsyncGenerator[Any, None]:
    """Strawberry 0.341's Schema._stream; only what follows `subscribe` differs."""
    # Private helpers of that release: imported here, where only a schema the gate gave this
    # stream runs, so that another Strawberry without them still imports this module.
    from strawberry.schema.schema import _coerce_error, _coerce_pre_execution_error

    async with extensions_runner.operation():
        try:
            initial_error = await self._prepare_operation_async(
                context=execution_context,
                extensions_runner=extensions_runner,
            )
        except (MissingQueryError, CannotGetOperationTypeError, InvalidOperationTypeError) as error:
            initial_error = PreExecutionError(data=None, errors=[_coerce_pre_execution_error(error)])

        if initial_error:
            initial_error.extensions = await extensions_runner.get_extensions_results(execution_context)
            execution_result = await self._handle_execution_result(
                execution_context, initial_error, extensions_runner
            )
            async with extensions_runner.on_stream_result(execution_result):
                yield execution_result
            return

        assert execution_context.graphql_document is not None

        if execution_context.operation_type is not OperationType.SUBSCRIPTION:
            result_source = self._stream_non_subscription(
                execution_context, extensions_runner, middleware_manager, operation_extensions,
            )
            async with aclosing(result_source):
                async for result in result_source:
                    async with extensions_runner.on_stream_result(result):
                        yield result
            return

        try:
            async with extensions_runner.executing():
                subscribed = _subscribe(
                    self._schema,
                    execution_context.graphql_document,
                    root_value=execution_context.root_value,
                    variable_values=execution_context.variables,
                    operation_name=execution_context.operation_name,
                    context_value=execution_context.context,
                    middleware=middleware_manager,
                    operation_extensions=operation_extensions,
                    **({} if execution_context_class is None else {"executor_class": execution_context_class}),
                )
                if isinstance(subscribed, types.CoroutineType):
                    subscribed = await subscribed

            if not isinstance(subscribed, tuple):  # pre-execution errors
                execution_result = await self._handle_execution_result(
                    execution_context,
                    PreExecutionError(data=None, errors=subscribed.errors),
                    extensions_runner,
                )
                async with extensions_runner.on_stream_result(execution_result):
                    yield execution_result
            else:
                try:
                    executor, source = subscribed
                    lean = not needs_result_hooks(extensions_runner)
                    build_executor = executor.build_per_event_executor
                    is_awaitable = executor.is_awaitable
                    events = executor.cancellable_iterable(source)
                    try:
                        async for payload in events:
                            # graphql-core's map_source_to_response_event
                            result = build_executor(payload).execute_operation(False)
                            if is_awaitable(result):
                                result = await result
                            if lean and not result.errors and type(result) is GraphQLExecutionResult:
                                # Strawberry's _handle_execution_result, for a result without errors
                                converted = ExecutionResult(
                                    data=result.data, errors=result.errors,
                                    extensions=dict(execution_context.extensions_results))
                                execution_context.result = converted
                                yield converted
                                continue
                            extension_result = await self._handle_execution_result(
                                execution_context, result, extensions_runner)
                            async with extensions_runner.on_stream_result(extension_result):
                                yield extension_result
                    finally:
                        # graphql-core's map_async_iterable closes the source stream, ignoring
                        # what that raises, and so does Strawberry's aclosing of that.
                        aclose = getattr(events, "aclose", None)
                        if aclose is not None:
                            with contextlib.suppress(Exception):
                                await aclose()
                # graphql-core doesn't handle exceptions raised while executing.
                except Exception as exc:  # noqa: BLE001
                    execution_result = await self._handle_execution_result(
                        execution_context,
                        GraphQLExecutionResult(data=None, errors=[_coerce_error(exc)]),
                        extensions_runner,
                    )
                    async with extensions_runner.on_stream_result(execution_result):
                        yield execution_result
        # catch exceptions raised in `on_execute` hook.
        except Exception as exc:  # noqa: BLE001
            origin_result = GraphQLExecutionResult(data=None, errors=[_coerce_error(exc)])
            execution_result = await self._handle_execution_result(
                execution_context, origin_result, extensions_runner,
            )
            async with extensions_runner.on_stream_result(execution_result):
                yield execution_result


def use_lean_stream(schema: Any) -> None:
    """Give `schema` (a served copy) the lean stream, unless its class brings its own."""
    if GATE.active and getattr(type(schema), "_stream", None) is Schema._stream:
        schema._stream = types.MethodType(lean_stream, schema)
