"""The one schema extension the server adds to a user's schema.

Limits (tokens, depth, aliases), bounded caches of parsed and validated documents, the
optional ban on introspection, error masking, operation metrics and the refusal of a
subscription over plain HTTP, with one hook per stage. As separate extensions (Strawberry's
ParserCache, ValidationCache, MaskErrors, the limiters, and ours) each costs a context
manager per operation, kept open for as long as a subscription runs, and on every
subscription message Strawberry wraps each one's hook and asks each one for results: a
sixth of the server's time delivering subscription messages (py-spy, bench fan-out).
"""

from __future__ import annotations

import copy
import dataclasses
import functools
from collections.abc import Iterator
from typing import Any

from graphql import GraphQLError, NoSchemaIntrospectionCustomRule
from graphql.validation import ASTValidationRule
from strawberry.extensions import MaxAliasesLimiter, QueryDepthLimiter, SchemaExtension
from strawberry.extensions.parser_cache import _get_parse_cache
from strawberry.extensions.validation_cache import _get_validate_cache
from strawberry.schema import BaseSchema

from .errors import LayerUnavailable
from .executor import per_event_memo_executor
from .limits import Limits
from .metrics import SUBSCRIPTIONS_ACTIVE, operation_finished, operation_of
from .sse import refuse_subscription_over_plain_http

CACHED_DOCUMENTS = 1000  # distinct GraphQL documents whose parse and validation are kept
MASKED_MESSAGE = "Unexpected error."


@dataclasses.dataclass(frozen=True)
class ServerPolicy:
    """What the extension enforces; built once per app and shared by every operation."""

    max_tokens: int
    validation_rules: tuple[type[ASTValidationRule], ...]
    mask_errors: bool


def policy_for(limits: Limits, *, introspection: bool, debug: bool) -> ServerPolicy:
    # The depth and alias limiters build their rule classes when instantiated: made once
    # here, so the validation cache (keyed by the rules) hits on every request.
    rules = [
        *QueryDepthLimiter(max_depth=limits.max_depth).validation_rules,
        *MaxAliasesLimiter(max_alias_count=limits.max_aliases).validation_rules,
    ]
    if not introspection:
        rules.append(NoSchemaIntrospectionCustomRule)
    return ServerPolicy(max_tokens=limits.max_tokens, validation_rules=tuple(rules), mask_errors=not debug)


def should_mask_error(error: GraphQLError) -> bool:
    """Mask what a resolver did not mean to say (a KeyError's text, a database URL);
    keep errors raised on purpose: GraphQLError, and the layer being unavailable."""
    original = error.original_error
    return original is not None and not isinstance(original, (GraphQLError, LayerUnavailable))


def _masked(error: GraphQLError) -> GraphQLError:
    return GraphQLError(MASKED_MESSAGE, nodes=error.nodes, source=error.source, positions=error.positions,
                        path=error.path, original_error=None)


def mask_errors_in(result: object) -> None:
    """Replace unexpected errors in a result (and its incremental parts) in place."""
    for part in (result, *(getattr(result, "incremental", None) or ()), *(getattr(result, "completed", None) or ())):
        errors = getattr(part, "errors", None)
        if errors:
            part.errors = [_masked(e) if should_mask_error(e) else e for e in errors]  # type: ignore[attr-defined]


_parse = _get_parse_cache(CACHED_DOCUMENTS)  # Strawberry's own bounded LRU caches
_validate = _get_validate_cache(CACHED_DOCUMENTS)


class ServerExtension(SchemaExtension):
    def __init__(self, policy: ServerPolicy) -> None:
        self.policy = policy
        self.subscription = False

    def on_operation(self) -> Iterator[None]:
        context = self.execution_context
        context.parse_options["max_tokens"] = self.policy.max_tokens
        context.validation_rules = context.validation_rules + self.policy.validation_rules
        try:
            yield
        finally:
            if self.subscription:
                SUBSCRIPTIONS_ACTIVE.dec()
        operation_finished(context)  # counts errors before they are masked: the count is the same
        if self.policy.mask_errors:
            result = context.result
            mask_errors_in(getattr(result, "initial_result", None) or result)

    def on_parse(self) -> Iterator[None]:
        context = self.execution_context
        try:
            context.graphql_document = _parse(context.query, **context.parse_options)
        except GraphQLError:
            # Left unparsed: Strawberry parses it again and reports the syntax error itself.
            # (Strawberry's ParserCache raises it here, where schema.stream, serving WebSocket
            # and SSE operations, does not catch it.)
            pass
        yield

    def on_validate(self) -> Iterator[None]:
        context = self.execution_context
        if context.graphql_document is not None:
            context.pre_execution_errors = _validate(
                context.schema._schema, context.graphql_document, context.validation_rules
            )
        yield
        refuse_subscription_over_plain_http(context)

    def on_execute(self) -> Iterator[None]:
        if not self.subscription and operation_of(self.execution_context) == "subscription":
            self.subscription = True
            SUBSCRIPTIONS_ACTIVE.inc()
        yield

    def on_stream_result(self, result: Any) -> Iterator[None]:
        if self.policy.mask_errors:
            mask_errors_in(result)
        yield


def with_server_extensions(schema: BaseSchema, limits: Limits, *, introspection: bool,
                           debug: bool) -> BaseSchema:
    """A copy of `schema` that also runs the server's extension and executes subscription
    events without graphql-core's per-event leak (the user's schema object, perhaps shared
    with their tests, is not changed)."""
    policy = policy_for(limits, introspection=introspection, debug=debug)
    served = copy.copy(schema)
    served.extensions = (*schema.extensions, functools.partial(ServerExtension, policy))  # type: ignore[attr-defined]
    base = getattr(schema, "execution_context_class", None)
    if isinstance(base, type):
        served.execution_context_class = per_event_memo_executor(base)  # type: ignore[attr-defined]
    return served
