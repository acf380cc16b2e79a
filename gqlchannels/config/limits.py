"""Limits on what one client may ask of the server.

The GraphQL limits (tokens, depth, aliases, fields per selection set) are enforced by
gqlchannels.graphql.extension and gqlchannels.graphql.validation. Every
limit is a number a client can hit by accident or on purpose; hitting it is a clear 4xx (or
a close code), never memory growth and never a 500.
"""

from __future__ import annotations

import dataclasses


@dataclasses.dataclass(frozen=True)
class Limits:
    max_body_size: int = 1024 * 1024  # bytes of one HTTP request body
    # seconds from a request's head to the end of its body: a client trickling a body must not
    # hold a connection (and a place under --max-connections) for as long as it likes
    body_timeout: float = 30.0
    max_depth: int = 20  # GraphiQL's full introspection query passes both (tests/graphql/test_limits.py)
    # graphql-core's validation rules cost about 14 us a token on a 2-core machine: 3,000 keep
    # any valid document under 50 ms (bench/ --only hostile). Real clients' documents are
    # hundreds of tokens; GraphiQL's introspection query is about 250.
    max_tokens: int = 3000
    max_aliases: int = 50
    # Fields and fragment spreads in one selection set, its inline fragments' included: the
    # overlap check compares fields with the same name pairwise. GraphiQL's introspection
    # query selects at most 11 in one; a wide real query, a few dozen.
    max_selection_fields: int = 200
    max_subscriptions: int = 100  # operations in flight on one WebSocket
    connection_init_timeout: float = 10.0  # seconds a WebSocket may wait before connection_init
