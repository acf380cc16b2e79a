"""GraphQLTestClient: the application `build_application` returns, run in process over ASGI."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
from collections.abc import AsyncIterator, Mapping
from contextlib import AbstractAsyncContextManager
from types import TracebackType
from typing import Any, cast

from channels.layers import BaseChannelLayer
from strawberry.schema import BaseSchema

from ..asgi.app import build_application
from ..asgi.routing import ProtocolRouter
from ..config.importing import import_schema
from ..config.layer_aliases import pop_default_layer, push_default_layer
from ..config.layer_url import parse_layer_url
from ..events.listen import Events
from .asgi_session import ASGISession
from .errors import GraphQLTestClientError, RequestTimeout, StartupFailed
from .layer_watch import ObservedLayer
from .subscriptions import GRAPHQL_TRANSPORT_WS, Result, SubscriptionStream, describe

try:
    import httpx
except ImportError as exc:  # pragma: no cover - depends on the installation
    raise ImportError(
        "gqlchannels.testing sends HTTP requests with httpx: pip install 'gqlchannels[testing]'"
    ) from exc

DEFAULT_TIMEOUT = 10.0  # seconds; generous, so that a loaded CI machine does not fail tests
HOST = "testserver"
# What GraphQL-over-HTTP asks clients to send, as Apollo Client 4 and graphql-http do.
ACCEPT = "application/graphql-response+json, application/json;q=0.9"


@dataclasses.dataclass(frozen=True, kw_only=True)
class HTTPResult(Result):
    """A GraphQL result over HTTP, with the response's status and headers."""

    status: int
    headers: httpx.Headers


def in_process_layer() -> BaseChannelLayer:
    """A new layer of the kind `memory://` names: one process, no broker."""
    return parse_layer_url("memory://").make_layer()


class GraphQLTestClient:
    """Serve a schema in process, the way `gqlchannels serve` does, and talk to it.

    `GraphQLTestClient(schema, **options)` takes `build_application`'s options (`auth`,
    `debug`, `limits`, `allowed_origins`, `path`, ...) and runs the very application it
    returns, over ASGI with no sockets: the same limits, auth hook, error masking and context.
    `schema` is a Strawberry schema or a 'module:attribute' string, as `serve` takes.
    `layer` is the channel layer: by default a new in-process one for each client, so tests
    do not see each other's events; a layer URL builds this client's own layer from it, and a
    layer instance is used as it is. The client closes its layer when it exits.

    Use it with `async with`: entering runs the application's lifespan startup, as a server
    does before it serves (the layer is created in the running loop), exiting ends open
    subscriptions and runs the shutdown. While it runs, its layer is also Channels' default
    (what `get_channel_layer()` returns) and the one `gqlchannels.publish` uses in this
    process, as a server's is. `timeout` bounds every wait, in seconds.
    """

    def __init__(self, schema: BaseSchema | str, *, layer: str | BaseChannelLayer | None = None,
                 timeout: float = DEFAULT_TIMEOUT, **options: Any) -> None:
        self.schema = schema
        self.timeout = timeout
        self.options = options
        self.path = options.get("path", "/graphql").rstrip("/") or "/"
        self._layer_choice = layer
        self._observed: ObservedLayer | None = None
        self._app: ProtocolRouter | None = None
        self._http: httpx.AsyncClient | None = None
        self._lifespan: ASGISession | None = None
        self._subscriptions: set[SubscriptionStream] = set()

    # Starting and stopping.

    async def __aenter__(self) -> GraphQLTestClient:
        schema = import_schema(self.schema, app_dir=None) if isinstance(self.schema, str) else self.schema
        layer = self._new_layer()
        self._observed = ObservedLayer(layer)
        # The application uses the layer through the observer (it passes every call through)
        # so that subscribe() knows when a subscription listens: see layer_watch.py.
        observed = cast(BaseChannelLayer, self._observed)
        self._app = build_application(schema, layer=observed, **self.options)
        push_default_layer(observed)
        self._lifespan = ASGISession(self._app, {"type": "lifespan", "asgi": {"version": "3.0", "spec_version": "2.0"},
                                                 "state": {}})
        try:
            await self._lifespan_step("startup")
        except BaseException:
            await self._shut_down()
            raise
        self._http = httpx.AsyncClient(transport=httpx.ASGITransport(app=self._app), base_url=f"http://{HOST}")
        return self

    async def __aexit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                        tb: TracebackType | None) -> None:
        try:
            for stream in list(self._subscriptions):
                await stream.stop()
        finally:
            if self._http is not None:
                await self._http.aclose()
                self._http = None
            await self._shut_down()

    async def _shut_down(self) -> None:
        """The lifespan shutdown (which closes the layer), if the lifespan still runs."""
        lifespan, observed = self._running(self._lifespan), self._running(self._observed)
        try:
            if not lifespan.task.done():
                await self._lifespan_step("shutdown")
            elif hasattr(observed.layer, "close"):  # its startup failed: nothing else closes it
                await observed.layer.close()
        finally:
            await lifespan.end(self.timeout)
            pop_default_layer(observed)

    def _new_layer(self) -> BaseChannelLayer:
        if self._layer_choice is None:
            return in_process_layer()
        if isinstance(self._layer_choice, str):
            return parse_layer_url(self._layer_choice).make_layer()
        return self._layer_choice

    async def _lifespan_step(self, step: str) -> None:
        lifespan = self._running(self._lifespan)
        lifespan.send({"type": f"lifespan.{step}"})

        def answer() -> dict[str, Any] | None:
            if lifespan.output:
                return lifespan.output.popleft()
            if lifespan.task.done():
                raise StartupFailed(f"the application's lifespan ended during {step}: {lifespan.failure()!r}")
            return None

        message = await lifespan.wait_for(answer, self.timeout, lambda: StartupFailed(
            f"the application's lifespan {step} did not finish within {self.timeout:g} s"))
        if message["type"] == f"lifespan.{step}.failed":
            raise StartupFailed(f"the application's lifespan {step} failed: {message.get('message', '')}")

    def _running(self, part: Any) -> Any:
        if part is None:
            raise GraphQLTestClientError("the client is not running: use it inside `async with GraphQLTestClient(...)`")
        return part

    # What tests use.

    @property
    def app(self) -> ProtocolRouter:
        """The ASGI application served, as `build_application` returned it."""
        return cast(ProtocolRouter, self._running(self._app))

    @property
    def http(self) -> httpx.AsyncClient:
        """An httpx client sending requests to the application (base URL http://testserver),
        for what `execute` does not cover: GET requests, other paths, raw bodies."""
        return cast(httpx.AsyncClient, self._running(self._http))

    @property
    def layer(self) -> BaseChannelLayer:
        """The application's channel layer."""
        return cast(ObservedLayer, self._running(self._observed)).layer

    async def execute(self, query: str, variables: Mapping[str, Any] | None = None, *,
                      operation_name: str | None = None, headers: Mapping[str, str] | None = None) -> HTTPResult:
        """POST the operation to the GraphQL path, as a client does, and return its result:
        `data`, `errors` (as clients see them, masked unless `debug=True`), `status`, `headers`.

        The request accepts `application/graphql-response+json` first, as GraphQL-over-HTTP
        clients do (a document that does not validate is then a 400); `headers` adds to or
        replaces the request's headers (`{"Authorization": "Bearer ..."}`, `{"Accept": ...}`).
        """
        body: dict[str, Any] = {"query": query}
        if variables is not None:
            body["variables"] = dict(variables)
        if operation_name is not None:
            body["operationName"] = operation_name
        request_headers = httpx.Headers({"accept": ACCEPT})
        request_headers.update(headers or {})
        try:
            async with asyncio.timeout(self.timeout):
                response = await self.http.post(self.path, json=body, headers=request_headers)
        except TimeoutError:
            raise RequestTimeout(
                f"no answer to {describe(query, operation_name)} within {self.timeout:g} s") from None
        try:
            payload = response.json()
        except ValueError:
            payload = None
        if not isinstance(payload, dict):
            raise GraphQLTestClientError(
                f"the server answered {describe(query, operation_name)} with {response.status_code} and a body "
                f"that is not a JSON object: {response.text[:200]!r}")
        return HTTPResult(data=payload.get("data"), errors=payload.get("errors"), extensions=payload.get("extensions"),
                          status=response.status_code, headers=response.headers)

    def subscribe(self, query: str, variables: Mapping[str, Any] | None = None, *,
                  operation_name: str | None = None, connection_params: Mapping[str, Any] | None = None,
                  headers: Mapping[str, str] | None = None) -> AbstractAsyncContextManager[SubscriptionStream]:
        """Subscribe over graphql-transport-ws, on a WebSocket of its own.

        `async with client.subscribe(...) as stream:` returns once the subscription runs: it
        has sent a result, or it waits for messages from the channel layer with its groups
        joined (so what is published next reaches it). `connection_params` is the
        connection_init payload (what the auth hook reads), `headers` the handshake's
        (`Origin`, `Authorization`). A refusal raises ConnectionRefused with the close code and
        reason. Leaving completes the operation, closes the WebSocket and waits until the
        server has ended it (its groups left).
        """
        return self._subscription(query, variables, operation_name, connection_params, headers)

    @contextlib.asynccontextmanager
    async def _subscription(self, query: str, variables: Mapping[str, Any] | None, operation_name: str | None,
                            connection_params: Mapping[str, Any] | None,
                            headers: Mapping[str, str] | None) -> AsyncIterator[SubscriptionStream]:
        stream = SubscriptionStream(self.app, self._websocket_scope(headers or {}), query=query, variables=variables,
                                    operation_name=operation_name, connection_params=connection_params,
                                    timeout=self.timeout)
        self._subscriptions.add(stream)
        try:
            await stream.start()
            yield stream
        finally:
            self._subscriptions.discard(stream)
            await stream.stop()

    def _websocket_scope(self, headers: Mapping[str, str]) -> dict[str, Any]:
        raw = [(b"host", HOST.encode()), (b"connection", b"Upgrade"), (b"upgrade", b"websocket"),
               (b"sec-websocket-version", b"13"), (b"sec-websocket-protocol", GRAPHQL_TRANSPORT_WS.encode())]
        given = {name.lower().encode("latin-1"): value.encode("latin-1") for name, value in headers.items()}
        raw = [(name, value) for name, value in raw if name not in given] + list(given.items())
        return {
            "type": "websocket", "asgi": {"version": "3.0", "spec_version": "2.4"}, "http_version": "1.1",
            "scheme": "ws", "server": (HOST, 80), "client": ("127.0.0.1", 50000), "root_path": "",
            "path": self.path, "raw_path": self.path.encode(), "query_string": b"", "headers": raw,
            "subprotocols": [GRAPHQL_TRANSPORT_WS],
            # As uvicorn: a handshake refused with a status (a 404) answers with that status.
            "extensions": {"websocket.http.response": {}},
        }

    async def publish(self, group: str, message: dict[str, Any]) -> None:
        """Send `message` (a dict with a "type") to `group` on the application's layer, as a
        resolver's `info.context["events"].publish(...)` does: checked, then delivered to the
        subscriptions listening to that group."""
        await Events(cast(BaseChannelLayer, self._running(self._observed))).publish(group, message)
