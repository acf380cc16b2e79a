"""The one schema extension the server adds to a user's schema.

Limits (tokens, depth, aliases, fields per selection set), the bounded cache of parsed and
validated documents (gqlchannels.graphql.documents: those not in it are validated off the event
loop), the optional ban on introspection (with no "Did you mean" suggestions, which would
name fields), error masking, operation metrics and the refusal of a subscription over plain
HTTP, with one hook per stage. As separate extensions (Strawberry's
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
from collections.abc import Awaitable, Callable, Iterator, Sequence
from typing import Any

from graphql import DocumentNode, GraphQLError, GraphQLSchema, NoSchemaIntrospectionCustomRule
from graphql.validation import ASTValidationRule
from strawberry.exceptions import MissingQueryError
from strawberry.extensions import SchemaExtension
from strawberry.schema import BaseSchema
from strawberry.schema.exceptions import CannotGetOperationTypeError, InvalidOperationTypeError
from strawberry.types import ExecutionContext
from strawberry.types.execution import PreExecutionError
from strawberry.utils.logging import StrawberryLogger

from .. import telemetry
from ..config.limits import Limits
from ..errors import InvalidName, LayerUnavailable
from ..metrics import EVENTS_SHARED, SUBSCRIPTIONS_ACTIVE, operation_finished, operation_of
from ..overrides import graphql_shared_events
from ..overrides.graphql_executor import executor_class
from ..overrides.strawberry_extensions import use_lean_runner
from ..overrides.strawberry_schema import graphql_schema, prepare_first, serve_as_info_schema
from ..overrides.strawberry_stream import use_lean_stream
from .context import PREPARED_KEY, refuse_subscription_over_plain_http
from .documents import DOCUMENTS, PreparedDocument
from .validation import DocumentLimitsRule, validate_document

logger = logging.getLogger("gqlchannels")

MASKED_MESSAGE = "Unexpected error."


@dataclasses.dataclass(frozen=True, eq=False)  # hashed by identity: part of every validation's cache key
class ServerPolicy:
    """What the extension enforces; built once per app and shared by every operation."""

    max_tokens: int
    limits_rule: type[DocumentLimitsRule]  # checked before every other rule
    validation_rules: tuple[type[ASTValidationRule], ...]  # added to the schema's own
    hide_suggestions: bool
    mask_errors: bool
    tracing: Any = None  # gqlchannels.telemetry's operation spans when tracing is on

    def validation_key(self, schema: GraphQLSchema, rules: tuple[type[ASTValidationRule], ...]) -> Any:
        return schema, rules, self

    def validator(self, schema: GraphQLSchema,
                  rules: Sequence[type[ASTValidationRule]]) -> Callable[[Any], list[GraphQLError]]:
        return functools.partial(validate_document, schema, rules=tuple(rules),
                                 limits_rule=self.limits_rule, hide_suggestions=self.hide_suggestions)


def policy_for(limits: Limits, *, introspection: bool, debug: bool) -> ServerPolicy:
    return ServerPolicy(
        max_tokens=limits.max_tokens,
        # Made once here, so the validation cache hits on every request.
        limits_rule=DocumentLimitsRule.for_limits(limits),
        validation_rules=() if introspection else (NoSchemaIntrospectionCustomRule,),
        # "Did you mean 'hello'?" would name the fields introspection is meant to hide.
        hide_suggestions=not introspection,
        mask_errors=not debug,
        tracing=telemetry.operation_tracer(),
    )


# Strawberry's errors for a request that names no operation it can run: the client's mistake,
# which it must be told (over WebSocket they close the connection with 4400 and this reason).
CLIENT_MISTAKES = (CannotGetOperationTypeError, InvalidOperationTypeError, MissingQueryError)


def should_mask_error(error: GraphQLError) -> bool:
    """Mask what a resolver did not mean to say (a KeyError's text, a database URL);
    keep errors raised on purpose (GraphQLError, the layer being unavailable) and the
    client's own mistakes.

    An invalid group name (InvalidName) is shown: group names are built from what the
    client sends (a room id with a space in it), the message names only that name and the
    rule, and the client can fix its request. MessageNotSerializable stays masked: the
    message is the resolver's own making (a datetime left in it is the server's bug, not
    the client's), and its text quotes values the client must not see; the log has it in
    full."""
    original = error.original_error
    return original is not None and not isinstance(
        original, (GraphQLError, LayerUnavailable, InvalidName, *CLIENT_MISTAKES)
    )


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
    (its own mistakes, errors raised on purpose) go to INFO, one line for them all: a
    document can hold a hundred mistakes."""
    shown = []
    for error in errors:
        if should_mask_error(error):
            StrawberryLogger.error(error, execution_context)
        else:
            shown.append(error)
    if len(shown) == 1:
        logger.info("GraphQL error returned to the client: %s", shown[0].message)
    elif shown:
        logger.info("GraphQL error returned to the client: %s (and %d more)", shown[0].message, len(shown) - 1)


def _then_mask(schema: BaseSchema) -> Callable[..., None]:
    """`schema.process_errors`, then masking; a user's own override still sees every error."""
    overridden = type(schema).process_errors is not BaseSchema.process_errors
    process_errors = schema.process_errors if overridden else _log_unexpected_only

    def process_errors_then_mask(errors: list[GraphQLError], execution_context: Any = None) -> None:
        process_errors(errors, execution_context)  # the real error, with its traceback
        mask_unexpected(errors)

    return process_errors_then_mask


# One tuple of rules per (schema's, server's) pair instead of a new one for every operation:
# a subscription keeps its operation's 300-byte tuple as long as it runs.
_combined_rules = functools.lru_cache(maxsize=64)(tuple.__add__)


def parse_document(query: str, *, max_tokens: int) -> DocumentNode:
    """`query` parsed through the cache the extension uses, so that a transport that must look
    at a document before running it (sse.py, to tell a subscription) does not parse it twice;
    GraphQLError if it does not parse."""
    prepared = DOCUMENTS.parse(query, max_tokens)
    if prepared.syntax_error is not None:
        raise prepared.syntax_error
    assert prepared.document is not None
    return prepared.document


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
        self.prepared: PreparedDocument | None = None  # set off the loop by prepare_off_loop

    def on_operation(self) -> Iterator[None]:
        context = self.execution_context
        tracing = self.policy.tracing
        if tracing is not None:
            # The operation's span is the current one while it runs: a resolver's publish is its child.
            span, token = tracing.start()
        context.parse_options["max_tokens"] = self.policy.max_tokens
        context.validation_rules = with_rules(context.validation_rules, self.policy.validation_rules)
        if graphql_schema(context.schema) is None:
            # Strawberry validates (the served-schema override is not in use): the limits
            # join its rules, checked with them rather than first.
            context.validation_rules = with_rules(context.validation_rules, (self.policy.limits_rule,))
        error: BaseException | None = None
        try:
            yield
        except BaseException as exc:
            error = exc
            raise
        finally:
            if self.subscription:
                SUBSCRIPTIONS_ACTIVE.dec()
            if tracing is not None:
                tracing.end(span, token, context, error)
        operation_finished(context)

    def on_parse(self) -> Iterator[None]:
        context = self.execution_context
        if context.graphql_document is None and isinstance(context.query, str) and context.query:
            if self.prepared is None:
                self.prepared = DOCUMENTS.parse(context.query, self.policy.max_tokens)
            # A syntax error leaves it unparsed: Strawberry parses it again and reports the
            # error itself. (Strawberry's ParserCache raises it here, where schema.stream,
            # serving WebSocket and SSE operations, does not catch it.)
            context.graphql_document = self.prepared.document
        yield

    def on_validate(self) -> Iterator[None]:
        context = self.execution_context
        document = context.graphql_document
        schema = graphql_schema(context.schema)
        if document is not None and schema is not None:
            validator = self.policy.validator(schema, context.validation_rules)
            if self.prepared is not None and document is self.prepared.document:
                context.pre_execution_errors = DOCUMENTS.validate(
                    self.prepared, self.policy.validation_key(schema, context.validation_rules), validator)
            else:  # a document another extension provided: not ours to cache
                context.pre_execution_errors = validator(document)
        yield
        refuse_subscription_over_plain_http(context)

    def on_execute(self) -> Iterator[None]:
        if not self.subscription and operation_of(self.execution_context) == "subscription":
            self.subscription = True
            SUBSCRIPTIONS_ACTIVE.inc()
        yield


def _server_extension(extensions: Sequence[SchemaExtension]) -> ServerExtension | None:
    return next((e for e in extensions if isinstance(e, ServerExtension)), None)


def _parses_too(extension: SchemaExtension) -> bool:
    return not isinstance(extension, ServerExtension) and type(extension).on_parse is not SchemaExtension.on_parse


def _handed_over(context: Any, query: str, max_tokens: int, key: Any) -> PreparedDocument | None:
    """The document the lean HTTP handler prepared for this request before handing it to the
    full route (a document that does not validate leaves the cache, so it would be parsed and
    validated again), if it is this query's under the same rules."""
    request = context.get("request") if isinstance(context, dict) else None
    scope = getattr(getattr(request, "consumer", None), "scope", None)
    prepared = scope.get(PREPARED_KEY) if isinstance(scope, dict) else None
    if isinstance(prepared, PreparedDocument) and prepared.key == (query, max_tokens) \
            and (prepared.document is None or key in prepared.validations):
        return prepared
    return None


def prepare_off_loop(served: BaseSchema) -> Callable[[ExecutionContext, Any], Awaitable[Any]]:
    """What runs before Strawberry's parse and validation of each operation of `served`: the
    work the document cache does not save, done in its worker thread, so that the
    extension's hooks find the document and its errors ready."""

    async def prepare(context: ExecutionContext, extensions_runner: Any) -> PreExecutionError | None:
        extension = _server_extension(extensions_runner.extensions)
        schema = graphql_schema(served)
        if extension is None or schema is None or context.graphql_document is not None \
                or not isinstance(context.query, str) or not context.query:
            return None
        policy = extension.policy
        key = policy.validation_key(schema, context.validation_rules)
        prepared = _handed_over(context.context, context.query, policy.max_tokens, key)
        if prepared is None:
            validator = policy.validator(schema, context.validation_rules)
            if policy.tracing is not None and not DOCUMENTS.is_prepared(context.query, policy.max_tokens, key):
                with policy.tracing.preparing():  # a span only for the work the cache does not save
                    prepared = await DOCUMENTS.prepare(context.query, policy.max_tokens, key, validator)
            else:
                prepared = await DOCUMENTS.prepare(context.query, policy.max_tokens, key, validator)
        extension.prepared = prepared
        if prepared.syntax_error is not None and not any(map(_parses_too, extensions_runner.extensions)):
            # Strawberry would parse the text again, on the loop, to report the error.
            context.pre_execution_errors = [prepared.syntax_error]
            return PreExecutionError(data=None, errors=[prepared.syntax_error])
        return None

    return prepare


def server_policy(served: BaseSchema) -> ServerPolicy:
    """The policy `with_server_extensions` gave the served schema's extension."""
    for extension in reversed(served.extensions):  # type: ignore[attr-defined]
        if isinstance(extension, functools.partial) and extension.func is ServerExtension:
            return extension.args[0]
    raise ValueError("not a schema served by gqlchannels")


def with_server_extensions(schema: BaseSchema, limits: Limits, *, introspection: bool,
                           debug: bool) -> BaseSchema:
    """A copy of `schema` that also runs the server's extension and executes subscription
    events without graphql-core's per-event leak (the user's schema object, perhaps shared
    with their tests, is not changed). Resolvers get the copy as `info.schema`, so what they
    execute through it obeys the same limits, masking and introspection setting."""
    policy = policy_for(limits, introspection=introspection, debug=debug)
    served = copy.copy(schema)
    served.extensions = (*schema.extensions, functools.partial(ServerExtension, policy))  # type: ignore[attr-defined]
    serve_as_info_schema(served)
    if policy.mask_errors:
        served.process_errors = _then_mask(schema)  # type: ignore[method-assign]
    use_lean_runner(served)
    use_lean_stream(served)
    prepare_first(served, prepare_off_loop(served))
    base = getattr(schema, "execution_context_class", None)
    if isinstance(base, type):
        executor = executor_class(base, share_events=not any(map(_may_change_results, schema.extensions)))
        served.execution_context_class = executor if introspection else without_suggestions(executor)  # type: ignore[attr-defined]
    return served


graphql_shared_events.count_replays(EVENTS_SHARED.inc)


def _may_change_results(extension: Any) -> bool:
    """Whether a user's extension could see each field (`resolve`) or change a subscription's
    results once executed (`on_stream_result`): events are then executed per subscriber, never
    one result shared between them."""
    kind = extension.func if isinstance(extension, functools.partial) else extension
    kind = kind if isinstance(kind, type) else type(kind)
    if not issubclass(kind, SchemaExtension):
        return True
    return kind.resolve is not SchemaExtension.resolve or kind.on_stream_result is not SchemaExtension.on_stream_result


@functools.cache
def without_suggestions(base: type) -> type:
    """A subclass of the executor class `base` (graphql-core's ExecutionContext, by way of
    Strawberry's or the user's) whose variable coercion suggests nothing: with introspection
    off, "Did you mean" would name the schema's input fields and enum values."""

    def build(cls: type, *args: Any, **kwargs: Any) -> Any:
        kwargs["hide_suggestions"] = True  # graphql-core's execute and subscribe pass it by name
        return super(executor, cls).build(*args, **kwargs)  # type: ignore[misc]

    executor = type(f"NoSuggestions{base.__name__}", (base,), {
        "__slots__": (), "build": classmethod(build), "__module__": __name__,
        "__doc__": "Coerces variables without suggestions (introspection is off).",
    })
    return executor
