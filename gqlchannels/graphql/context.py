"""What a transport puts into Strawberry's context besides what Strawberry itself does."""

from __future__ import annotations

import dataclasses
from typing import Any

from graphql import GraphQLError
from strawberry.types.graphql import OperationType

Scope = dict[str, Any]

# Put in the scope by the lean HTTP handler (gqlchannels.asgi.graphql_http) for the full route
# it hands a request to: the auth hook's user (HTTPConsumer takes it instead of calling the
# hook a second time) and the document it prepared (the extension takes it instead of
# parsing and validating the document again).
AUTHENTICATED_KEY = "gqlchannels.authenticated_user"
PREPARED_KEY = "gqlchannels.prepared_document"


@dataclasses.dataclass
class SSERequest:
    """What resolvers find at info.context["request"] over SSE."""

    scope: Scope
    headers: dict[str, str]


def refuse_subscription_over_plain_http(execution_context: Any) -> None:
    """A subscription in a plain HTTP request (one JSON answer) is a request error that says
    where subscriptions are served; Strawberry would run its resolver as if it were a query."""
    context = execution_context.context
    plain_http = isinstance(context, dict) and "ws" not in context \
        and not isinstance(context.get("request"), SSERequest)
    if plain_http and execution_context.operation_type == OperationType.SUBSCRIPTION:
        raise GraphQLError(
            "subscriptions are served over WebSocket (graphql-transport-ws or graphql-ws) "
            "and, when the server runs with --sse, over server-sent events (Accept: text/event-stream)"
        )
