"""GraphQL queries and mutations over HTTP executed by graphql-core directly (a fast path).

For each HTTP request Strawberry's `Schema.execute` builds an execution context, an
extensions runner with a context manager per stage, a middleware manager, and only then
calls graphql-core's `execute`; around it the view (Channels' HTTP consumer, Strawberry's
request adapter and response objects) costs as much again. For a document the server has
already parsed and validated (its cache), with no extension but the server's own, none of
that changes the answer: `execute()` here runs graphql-core's execution as Strawberry's
`_execute_operation` calls it (the served schema's graphql-core schema and executor class,
Strawberry's awaitable check and context arguments), and `process_errors()` passes a
result's errors through Strawberry's `_process_errors` with an execution context built as
Strawberry builds one, so logging and masking are the same.

`refusal(schema)` says why a schema is not served this way (None when it is): a schema class
that changes how Strawberry executes, directives (Strawberry runs them as an extension),
incremental execution. This uses Strawberry's internals (`_schema`, `_process_errors`,
`_get_custom_context_kwargs`, its executor arguments), hence the gate: with another
Strawberry or graphql-core, or --no-fast-paths, every GraphQL HTTP request goes through the
middleware, Channels' HTTP consumer and Strawberry's view, as before.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from graphql import DocumentNode, ExecutionResult, GraphQLError, GraphQLSchema
from graphql import execute as graphql_execute
from strawberry.execution import optimized_is_awaitable
from strawberry.schema import Schema
from strawberry.types import ExecutionContext

from . import Kind, override

GATE = override(
    "strawberry-lean-http", Kind.FAST_PATH,
    {"strawberry-graphql": ">=0.341,<0.342", "graphql-core": ">=3.3.0a1,<3.4"},
    stock="the HTTP middleware, Channels' HTTP consumer and Strawberry's view for every GraphQL HTTP request",
)

# Schema methods whose behaviour execute() and process_errors() reproduce: a subclass that
# overrides any of them asks for Strawberry's own path.
_REPRODUCED = ("execute", "_execute_operation", "_handle_execution_result", "_create_execution_context",
               "_get_middleware_manager", "_get_execute_function", "_get_custom_context_kwargs",
               "_prepare_operation_async", "create_extensions_runner", "get_extensions", "_process_errors")


def refusal(schema: Any) -> str | None:
    """Why `schema` (a served Strawberry schema) is not executed here; None when it is."""
    if not GATE.active:
        return "fast paths are off"
    if not isinstance(schema, Schema) or not isinstance(getattr(schema, "_schema", None), GraphQLSchema):
        return "not a strawberry.Schema"
    changed = [name for name in _REPRODUCED if getattr(type(schema), name, None) is not getattr(Schema, name)]
    if changed:
        return f"its schema class overrides {', '.join(changed)}"
    if schema.directives:
        return "it has schema directives (run by Strawberry's directives extension)"
    if schema.config.enable_experimental_incremental_execution:
        return "incremental execution is on"
    return None


def execute(schema: Schema, document: DocumentNode, variables: dict[str, Any] | None, context: Any,
            operation_name: str | None, operation_extensions: dict[str, Any] | None) -> Any:
    """graphql-core's execution of `document`, as Strawberry's `_execute_operation` calls it
    (no middleware: Strawberry's manager is empty without extensions that resolve); an
    ExecutionResult or an awaitable of one."""
    executor_class = schema.execution_context_class
    kwargs = schema._get_custom_context_kwargs(operation_extensions)
    if executor_class is not None:
        kwargs["executor_class"] = executor_class
    return graphql_execute(
        schema._schema, document, root_value=None, context_value=context, variable_values=variables,
        operation_name=operation_name, is_awaitable=optimized_is_awaitable, **kwargs,
    )


def process_errors(schema: Schema, result: ExecutionResult, *, query: str, document: DocumentNode,
                   allowed_operations: Iterable[Any], context: Any, variables: dict[str, Any] | None,
                   operation_name: str | None, operation_extensions: dict[str, Any] | None) -> None:
    """Strawberry's processing of a result's errors (logging, then the server's masking, in
    place), given the execution context Strawberry would have built for the operation."""
    errors: list[GraphQLError] = result.errors or []
    execution_context = ExecutionContext(
        query=query, schema=schema, allowed_operations=allowed_operations, context=context,
        variables=variables, provided_operation_name=operation_name, operation_extensions=operation_extensions,
    )
    execution_context.graphql_document = document
    execution_context.pre_execution_errors = errors
    execution_context.result = result
    schema._process_errors(errors, execution_context)
