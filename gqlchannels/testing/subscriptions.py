"""A subscription over graphql-transport-ws, on a WebSocket of its own, run in process."""

from __future__ import annotations

import collections
import contextvars
import dataclasses
import json
from collections.abc import Mapping
from typing import Any

from ..asgi.routing import ASGIApp, Scope
from .asgi_session import ASGISession
from .errors import ConnectionClosed, ConnectionRefused, SubscriptionEnded, SubscriptionTimeout
from .layer_watch import WATCH, LayerWatch

GRAPHQL_TRANSPORT_WS = "graphql-transport-ws"
OPERATION_ID = "1"  # one operation per connection: the connection's layer calls are all its own


@dataclasses.dataclass(frozen=True, kw_only=True)
class Result:
    """One GraphQL result as a client receives it: JSON values, errors as the server wrote them
    (masked or not)."""

    data: dict[str, Any] | None = None
    errors: list[dict[str, Any]] | None = None
    extensions: dict[str, Any] | None = None


_END = object()  # in a subscription's inbox: the server completed the operation


def describe(query: str, operation_name: str | None) -> str:
    """How an error names an operation: its name, else the start of its document."""
    if operation_name:
        return f"operation {operation_name!r}"
    text = " ".join(query.split())
    return repr(text if len(text) <= 60 else text[:57] + "...")


class SubscriptionStream:
    """The results of one subscription: `await stream.next()`, or `async for result in stream`.

    Made by `GraphQLTestClient.subscribe(...)`, which opens a WebSocket for it, waits until
    it runs, and completes it on leaving. Iterating ends when the server completes the
    subscription; each wait for a result is bounded by the client's timeout.
    """

    def __init__(self, app: ASGIApp, scope: Scope, *, query: str, variables: Mapping[str, Any] | None,
                 operation_name: str | None, connection_params: Mapping[str, Any] | None, timeout: float) -> None:
        self.query = query
        self.variables = variables
        self.operation_name = operation_name
        self.connection_params = connection_params
        self.timeout = timeout
        self.name = describe(query, operation_name)
        self._watch = LayerWatch(on_change=lambda: self._session.notify())
        context = contextvars.Context()
        context.run(WATCH.set, self._watch)
        self._session = ASGISession(app, scope, context)
        self._inbox: collections.deque[Any] = collections.deque()
        self._accepted = self._acknowledged = self._ended = False
        self._closed: tuple[int, str] | None = None
        self._refused_status: int | None = None
        self._refused_body = b""
        self._failure_reported = False

    def __repr__(self) -> str:
        return f"<SubscriptionStream {self.name}>"

    async def next(self, timeout: float | None = None) -> Result:
        """The next result. Raise SubscriptionTimeout when none comes within `timeout` seconds
        (default: the client's; the subscription goes on), SubscriptionEnded once the server
        has completed it, ConnectionClosed if the server closed the WebSocket."""
        wait = self.timeout if timeout is None else timeout
        item = await self._session.wait_for(self._next_item, wait, lambda: SubscriptionTimeout(
            f"no result from subscription {self.name} within {wait:g} s"))
        if item is _END:
            self._ended = True
            raise SubscriptionEnded(f"subscription {self.name} has ended: the server completed it")
        return item

    def __aiter__(self) -> SubscriptionStream:
        return self

    async def __anext__(self) -> Result:
        try:
            return await self.next()
        except SubscriptionEnded:
            raise StopAsyncIteration from None

    # Starting: handshake, connection_init, subscribe, then wait until the operation runs.

    async def start(self) -> None:
        self._session.send({"type": "websocket.connect"})
        await self._session.wait_for(self._handshake_answered, self.timeout, lambda: SubscriptionTimeout(
            f"the server did not answer the WebSocket handshake for subscription {self.name} "
            f"within {self.timeout:g} s"))
        self._send({"type": "connection_init", "payload": dict(self.connection_params or {})})
        await self._session.wait_for(self._connection_acknowledged, self.timeout, lambda: SubscriptionTimeout(
            f"no connection_ack for subscription {self.name} within {self.timeout:g} s"))
        payload: dict[str, Any] = {"query": self.query}
        if self.variables is not None:
            payload["variables"] = dict(self.variables)
        if self.operation_name is not None:
            payload["operationName"] = self.operation_name
        self._send({"id": OPERATION_ID, "type": "subscribe", "payload": payload})
        await self._session.wait_for(self._running, self.timeout, lambda: SubscriptionTimeout(
            f"subscription {self.name} did not start within {self.timeout:g} s: the server sent no "
            "result for it, and it did not wait for messages from the channel layer (a resolver's "
            "info.context['events'].listen(...) joins its groups, then waits)"))

    def _handshake_answered(self) -> bool | None:
        self._drain()
        if self._accepted:
            return True
        if self._refused_status is not None:
            raise ConnectionRefused(self._refused_status, self._refused_body.decode(errors="replace"), (
                f"the server refused the WebSocket handshake with HTTP {self._refused_status}: "
                f"{self._refused_body.decode(errors='replace')[:200]}"))
        if self._closed is not None:
            # Closed before accepting: a server answers the handshake with 403.
            raise ConnectionRefused(403, self._closed[1], (
                "the server refused the WebSocket handshake (a server answers it with HTTP 403); "
                "a browser's Origin is refused unless it matches the Host or allowed_origins lists it"))
        return self._check_alive()

    def _connection_acknowledged(self) -> bool | None:
        self._drain()
        if self._acknowledged:
            return True
        if self._closed is not None:
            code, reason = self._closed
            raise ConnectionRefused(code, reason, (
                f"the server closed the WebSocket with {code} ({reason or 'no reason'}) instead of "
                "acknowledging connection_init" + (": the auth hook refused it" if code == 4403 else "")))
        return self._check_alive()

    def _running(self) -> bool | None:
        self._drain()
        if self._inbox or self._closed is not None or self._session.task.done() or self._watch.listening:
            return True  # running, or an answer or a close that next() reports
        return None

    def _next_item(self) -> Any:
        self._drain()
        if self._inbox:
            return self._inbox.popleft()
        if self._ended:
            return _END
        if self._closed is not None:
            code, reason = self._closed
            raise ConnectionClosed(code, reason, f"the server closed the WebSocket of subscription {self.name} "
                                                 f"with {code} ({reason or 'no reason'})")
        return self._check_alive()

    def _check_alive(self) -> None:
        """None while the application runs; once it has returned or raised, the error to raise."""
        if not self._session.task.done():
            return None
        failure = self._session.failure()
        self._failure_reported = True
        raise ConnectionClosed(1011, "", f"the application ended the WebSocket of subscription {self.name} "
                                         f"without closing it{f': it raised {failure!r}' if failure else ''}"
                               ) from failure

    # Reading what the application sent.

    def _drain(self) -> None:
        output = self._session.output
        while output:
            message = output.popleft()
            kind = message["type"]
            if kind == "websocket.send":
                self._received(json.loads(message["text"]))
            elif kind == "websocket.accept":
                self._accepted = True
            elif kind == "websocket.close":
                self._closed = (message.get("code", 1000), message.get("reason") or "")
            elif kind == "websocket.http.response.start":
                self._refused_status = message["status"]
            elif kind == "websocket.http.response.body":
                self._refused_body += message.get("body", b"")

    def _received(self, frame: dict[str, Any]) -> None:
        kind = frame.get("type")
        if kind == "connection_ack":
            self._acknowledged = True
        elif kind == "ping":  # answered as graphql-ws's client does
            self._send({"type": "pong", **({"payload": frame["payload"]} if "payload" in frame else {})})
        elif frame.get("id") != OPERATION_ID:
            return
        elif kind == "next":
            payload = frame["payload"]
            self._inbox.append(Result(data=payload.get("data"), errors=payload.get("errors"),
                                      extensions=payload.get("extensions")))
        elif kind == "error":  # the operation was refused before it ran: its errors, then the end
            self._inbox.append(Result(errors=frame["payload"]))
            self._inbox.append(_END)
        elif kind == "complete":
            self._inbox.append(_END)

    def _send(self, frame: dict[str, Any]) -> None:
        self._session.send({"type": "websocket.receive", "text": json.dumps(frame)})

    # Leaving: complete the operation, close the WebSocket, wait for the server to end it.

    async def stop(self) -> None:
        self._drain()
        if not self._session.task.done():
            if self._acknowledged and not self._ended and self._closed is None and _END not in self._inbox:
                self._send({"id": OPERATION_ID, "type": "complete"})
            self._session.send({"type": "websocket.disconnect", "code": 1000, "reason": ""})
        if not await self._session.end(self.timeout):
            raise SubscriptionTimeout(f"the server did not end the WebSocket of subscription {self.name} "
                                      f"within {self.timeout:g} s of the client leaving it")
        failure = self._session.failure()
        if failure is not None and not self._failure_reported:
            self._failure_reported = True
            raise ConnectionClosed(1011, "", f"the application raised {failure!r} serving subscription "
                                             f"{self.name}") from failure
