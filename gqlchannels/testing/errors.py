"""What the test client raises: each names what it waited for, or what the server said."""

from __future__ import annotations

from ..errors import GqlchannelsError


class GraphQLTestClientError(GqlchannelsError):
    """Base class of the test client's errors."""


class StartupFailed(GraphQLTestClientError):
    """The application's lifespan startup failed (its message says why; the log has the rest)."""


class RequestTimeout(GraphQLTestClientError, TimeoutError):
    """An HTTP request got no complete answer in time."""


class SubscriptionTimeout(GraphQLTestClientError, TimeoutError):
    """A subscription did not start, or sent no next result, in time. The subscription is
    left as it was: after a `next()` that timed out, later results still arrive."""


class SubscriptionEnded(GraphQLTestClientError):
    """The server completed the subscription (or refused it with an `error` message, which
    `next()` returned as a result with errors); no more results will come."""


class ConnectionClosed(GraphQLTestClientError):
    """The server closed the WebSocket: `code` and `reason` are those of its close frame."""

    def __init__(self, code: int, reason: str, message: str | None = None) -> None:
        self.code = code
        self.reason = reason
        super().__init__(message or f"the server closed the WebSocket with {code} ({reason or 'no reason'})")


class ConnectionRefused(ConnectionClosed):
    """The server refused the WebSocket before the subscription could start.

    After the handshake (the auth hook refusing `connection_init`: 4403 `Forbidden`), `code`
    and `reason` are the close frame's. A refused handshake (an origin not allowed, a path
    nothing is served at) has no close frame: a server answers it with an HTTP status, which
    is then the `code` (403, 404), and the reason says so.
    """
