"""The one schema extension the server adds to a user's schema.

Limits (tokens, depth, aliases), bounded caches of parsed and validated documents, the
optional ban on introspection, error masking, operation metrics and the refusal of a
subscription over plain HTTP, with one hook per stage. As separate extensions (Strawberry's
ParserCache, ValidationCache, MaskErrors, the limiters, and ours) each costs a context
manager per operation, kept open for as long as a subscription runs, and on every
subscription message Strawberry wraps each one's hook and asks each one for results: a
sixth of the server's time delivering subscription messages (py-spy, bench fan-out).

Unexpected errors are masked in `Schema.process_errors` (right after Strawberry, or the
user's override, has logged them) rather than in an `on_stream_result` hook: Strawberry
passes every result's errors through it once, over HTTP, WebSocket and SSE alike, and the
hook alone cost 14 of 70 us per subscription event.
"""

from __future__ import annotations

import copy
import dataclasses
import functools
import logging
from collections.abc import Callable, Iterator, Sequence
from typing import Any

from graphql import GraphQLError, NoSchemaIntrospectionCustomRule
from graphql.validation import ASTValidationRule
from strawberry.extensions import MaxAliasesLimiter, QueryDepthLimiter, SchemaExtension
from strawberry.extensions.parser_cache import _get_parse_cache
from strawberry.extensions.validation_cache import _get_validate_cache
from strawberry.exceptions import MissingQueryError
from strawberry.schema.exceptions import CannotGetOperationTypeError, InvalidOperationTypeError
from strawberry.schema import BaseSchema, Schema
from strawberry.utils.logging import StrawberryLogger

from .errors import LayerUnavailable
from .executor import per_event_memo_executor
from .extension_runner import create_lean_extensions_runner
from .limits import Limits
from .metrics import SUBSCRIPTIONS_ACTIVE, operation_finished, operation_of
from .sse import refuse_subscription_over_plain_http

logger = logging.getLogger("gqlchannels")

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


# Strawberry's errors for a request that names no operation it can run: the client's mistake,
# which it must be told (over WebSocket they close the connection with 4400 and this reason).
CLIENT_MISTAKES = (CannotGetOperationTypeError, InvalidOperationTypeError, MissingQueryError)


def should_mask_error(error: GraphQLError) -> bool:
    """Mask what a resolver did not mean to say (a KeyError's text, a database URL);
    keep errors raised on purpose (GraphQLError, the layer being unavailable) and the
    client's own mistakes."""
    original = error.original_error
    return original is not None and not isinstance(original, (GraphQLError, LayerUnavailable, *CLIENT_MISTAKES))


def mask_unexpected(errors: list[GraphQLError]) -> None:
    """Turn unexpected errors into "Unexpected error." in place (keeping path and locations),
    as Strawberry's MaskErrors does by replacing them."""
    for error in errors:
        if should_mask_error(error):
            error.message = MASKED_MESSAGE
            error.args = (MASKED_MESSAGE,)
            error.original_error = None
            error.extensions = {}


def _log_unexpected_only(errors: list[GraphQLError], execution_context: Any = None) -> None:
    """Strawberry's default logging, minus the noise: it logs every error at ERROR with a
    traceback, a client's invalid variable included. Errors the client is shown in full
    (its own mistakes, errors raised on purpose) go to INFO, one line each."""
    for error in errors:
        if should_mask_error(error):
            StrawberryLogger.error(error, execution_context)
        else:
            logger.info("GraphQL error returned to the client: %s", error.message)


def _then_mask(schema: BaseSchema) -> Callable[..., None]:
    """`schema.process_errors`, then masking; a user's own override still sees every error."""
    overridden = type(schema).process_errors is not BaseSchema.process_errors
    process_errors = schema.process_errors if overridden else _log_unexpected_only

    def process_errors_then_mask(errors: list[GraphQLError], execution_context: Any = None) -> None:
        process_errors(errors, execution_context)  # the real error, with its traceback
        mask_unexpected(errors)

    return process_errors_then_mask


_parse = _get_parse_cache(CACHED_DOCUMENTS)  # Strawberry's own bounded LRU caches
_validate = _get_validate_cache(CACHED_DOCUMENTS)
# One tuple of rules per (schema's, server's) pair instead of a new one for every operation:
# a subscription keeps its operation's 300-byte tuple as long as it runs.
_combined_rules = functools.lru_cache(maxsize=64)(tuple.__add__)


def with_rules(rules: Sequence[type[ASTValidationRule]],
               extra: tuple[type[ASTValidationRule], ...]) -> tuple[type[ASTValidationRule], ...]:
    try:
        return _combined_rules(rules, extra)
    except TypeError:  # not a tuple: a user's extension changed them
        return (*rules, *extra)


class ServerExtension(SchemaExtension):
    def __init__(self, policy: ServerPolicy) -> None:
        self.policy = policy
        self.subscription = False

    def on_operation(self) -> Iterator[None]:
        context = self.execution_context
        context.parse_options["max_tokens"] = self.policy.max_tokens
        context.validation_rules = with_rules(context.validation_rules, self.policy.validation_rules)
        try:
            yield
        finally:
            if self.subscription:
                SUBSCRIPTIONS_ACTIVE.dec()
        operation_finished(context)

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


def with_server_extensions(schema: BaseSchema, limits: Limits, *, introspection: bool,
                           debug: bool) -> BaseSchema:
    """A copy of `schema` that also runs the server's extension and executes subscription
    events without graphql-core's per-event leak (the user's schema object, perhaps shared
    with their tests, is not changed)."""
    policy = policy_for(limits, introspection=introspection, debug=debug)
    served = copy.copy(schema)
    served.extensions = (*schema.extensions, functools.partial(ServerExtension, policy))  # type: ignore[attr-defined]
    if policy.mask_errors:
        served.process_errors = _then_mask(schema)  # type: ignore[method-assign]
    if getattr(type(schema), "create_extensions_runner", None) is Schema.create_extensions_runner:
        # Strawberry's runner, not one the user's schema class brings: per-event shortcuts.
        served.create_extensions_runner = create_lean_extensions_runner  # type: ignore[attr-defined]
    base = getattr(schema, "execution_context_class", None)
    if isinstance(base, type):
        served.execution_context_class = per_event_memo_executor(base)  # type: ignore[attr-defined]
    return served
