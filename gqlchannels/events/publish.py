"""Publish a message to a group from anywhere: the server, a thread, a script, a Celery task.

Channel layers belong to one event loop (the RabbitMQ layer refuses any other), which is why
`async_to_sync(layer.group_send)` works once and then fails in a task runner. So:

- inside a running server, messages go through the server's own layer, on the server's loop
  (awaited directly from that loop, handed over from any other thread);
- anywhere else, one background thread per process owns an event loop and a layer built
  from GQLCHANNELS_LAYER_URL (or the `layer_url` argument), and every call, from any thread
  or any event loop, hands its message to that thread. One broker connection per process,
  reused across calls; a fork gets its own.

Every call checks the group name and the message before anything is sent, and is bounded
by `timeout`: a broker that is down is an error, never an endless wait.
"""

from __future__ import annotations

import asyncio
import atexit
import concurrent.futures
import os
import threading
from collections.abc import Callable, Coroutine
from typing import Any

from channels.layers import BaseChannelLayer

from .. import telemetry
from ..config.layer_url import LayerSpec, mask_url, parse_layer_url
from ..errors import ConfigError, LayerUnavailable
from .messages import check_group, check_message

DEFAULT_TIMEOUT = 5.0  # seconds; covers a first connection as well as the publish itself
LAYER_URL_ENV = "GQLCHANNELS_LAYER_URL"


class _ServerLayer:
    """The running server's layer and the loop it lives in (one per process, or none)."""

    layer: BaseChannelLayer | None = None
    loop: asyncio.AbstractEventLoop | None = None


def register_server_layer(layer: BaseChannelLayer, loop: asyncio.AbstractEventLoop) -> None:
    """Called by the server once its layer exists, so publishes in this process use it."""
    _ServerLayer.layer, _ServerLayer.loop = layer, loop


def server_layer_registered() -> bool:
    return _ServerLayer.layer is not None


def unregister_server_layer(layer: BaseChannelLayer) -> None:
    if _ServerLayer.layer is layer:
        _ServerLayer.layer = _ServerLayer.loop = None


class _BackgroundLayer:
    """A daemon thread running an event loop that owns one channel layer."""

    def __init__(self, spec: LayerSpec) -> None:
        self.spec = spec
        self.pid = os.getpid()
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, name="gqlchannels-publish", daemon=True)
        self.thread.start()
        self.layer = self._run(self._make_layer(), timeout=10)

    async def _make_layer(self) -> BaseChannelLayer:
        # Built inside this thread's running loop, which the RabbitMQ layer binds to; built
        # directly, because a script or task runner may have no Django settings at all.
        return self.spec.make_layer()

    def _run(self, coroutine: Coroutine[Any, Any, Any], timeout: float) -> Any:
        return asyncio.run_coroutine_threadsafe(coroutine, self.loop).result(timeout)

    def submit(self, coroutine: Coroutine[Any, Any, Any]) -> concurrent.futures.Future[Any]:
        return asyncio.run_coroutine_threadsafe(coroutine, self.loop)

    def close(self, timeout: float = 2.0) -> None:
        try:
            self._run(self._shutdown(), timeout)
        except Exception:  # exiting anyway; the broker drops the connection when we go
            pass
        self.loop.call_soon_threadsafe(self.loop.stop)

    async def _shutdown(self) -> None:
        close = getattr(self.layer, "close", None)
        if close is not None:
            await close()
        # Whatever the layer left running (reader, heartbeat) ends now, not as a warning at exit.
        others = [task for task in asyncio.all_tasks() if task is not asyncio.current_task()]
        for task in others:
            task.cancel()
        await asyncio.gather(*others, return_exceptions=True)


_background: dict[str, _BackgroundLayer] = {}
_background_lock = threading.Lock()


def _background_layer(layer_url: str | None) -> _BackgroundLayer:
    url = layer_url or os.environ.get(LAYER_URL_ENV, "")
    if not url:
        raise ConfigError(
            f"no channel layer to publish to: set {LAYER_URL_ENV} to the broker URL the server "
            "uses (amqp://user:password@host:5672/vhost), or pass layer_url=."
        )
    spec = parse_layer_url(url)
    if spec.is_memory:
        raise ConfigError(
            f"cannot publish through {url!r} from outside the server: memory:// lives inside one "
            f"server process. Set {LAYER_URL_ENV} to the broker URL the server uses "
            "(amqp://user:password@host:5672/vhost)."
        )
    with _background_lock:
        existing = _background.get(url)
        if existing is not None and existing.pid == os.getpid() and existing.thread.is_alive():
            return existing
        _background[url] = created = _BackgroundLayer(spec)  # a fork's child starts afresh
        return created


@atexit.register
def _close_background_layers() -> None:
    for background in list(_background.values()):
        if background.pid == os.getpid():
            background.close()
    _background.clear()


def _unavailable(group: str, timeout: float, url: str | None, cause: BaseException | None) -> LayerUnavailable:
    where = mask_url(url) if url else "the server's channel layer"
    detail = f" ({type(cause).__name__}: {cause})" if cause is not None and str(cause) else ""
    return LayerUnavailable(
        f"could not publish to group {group!r} within {timeout:g} s through {where}{detail}; "
        "is the broker running and reachable?"
    )


def _prepare(group: str, message: dict[str, Any]) -> None:
    check_group(group)
    check_message(message)


class _Untraced:
    """What a publish is sent under when tracing is off: no span, the message as it is."""

    def wrap(self, message: dict[str, Any]) -> dict[str, Any]:
        return message

    def __enter__(self) -> _Untraced:
        return self

    def __exit__(self, *exc_info: Any) -> None:
        return None


_UNTRACED = _Untraced()


def _producer(group: str, layer: BaseChannelLayer) -> Any:
    """The PRODUCER span to send a message to `group` under (`with` it, sending `.wrap(message)`)."""
    producer = telemetry.producer(group, layer)
    return _UNTRACED if producer is None else producer


Submit = Callable[[Coroutine[Any, Any, Any]], "concurrent.futures.Future[Any]"]


def _submitter(loop: asyncio.AbstractEventLoop) -> Submit:
    return lambda coroutine: asyncio.run_coroutine_threadsafe(coroutine, loop)


async def publish_through(layer: BaseChannelLayer, group: str, message: dict[str, Any],
                          timeout: float = DEFAULT_TIMEOUT) -> None:
    """Checked, bounded `group_send` on a layer of the running loop (the server's own)."""
    _prepare(group, message)
    try:
        async with asyncio.timeout(timeout):
            with _producer(group, layer) as producer:
                await layer.group_send(group, producer.wrap(message))
    except (TimeoutError, OSError, ConnectionError) as exc:
        raise _unavailable(group, timeout, None, exc) from exc


async def apublish(group: str, message: dict[str, Any], *, layer_url: str | None = None,
                   timeout: float = DEFAULT_TIMEOUT) -> None:
    """Send `message` (a dict with a "type") to every subscriber of `group`, from any loop."""
    server_layer, server_loop = _ServerLayer.layer, _ServerLayer.loop
    if layer_url is None and server_layer is not None and server_loop is asyncio.get_running_loop():
        await publish_through(server_layer, group, message, timeout)
        return
    _prepare(group, message)
    try:
        layer: BaseChannelLayer
        submit: Submit
        if layer_url is None and server_layer is not None and server_loop is not None:
            layer, submit = server_layer, _submitter(server_loop)
        else:
            background = await asyncio.to_thread(_background_layer, layer_url)
            layer, submit = background.layer, background.submit
        with _producer(group, layer) as producer:
            future = submit(layer.group_send(group, producer.wrap(message)))
            try:
                await asyncio.wait_for(asyncio.wrap_future(future), timeout)
            finally:
                future.cancel()
    except (TimeoutError, OSError, ConnectionError) as exc:
        raise _unavailable(group, timeout, layer_url or os.environ.get(LAYER_URL_ENV), exc) from exc


def publish(group: str, message: dict[str, Any], *, layer_url: str | None = None,
            timeout: float = DEFAULT_TIMEOUT) -> None:
    """Blocking `apublish`, for synchronous code: scripts, Celery tasks, Django commands."""
    _prepare(group, message)
    server_layer, server_loop = _ServerLayer.layer, _ServerLayer.loop
    try:
        layer: BaseChannelLayer
        submit: Submit
        if layer_url is None and server_layer is not None and server_loop is not None:
            if _running_loop() is server_loop:
                raise RuntimeError(
                    "publish() would block the server's event loop; use `await apublish(...)` there."
                )
            layer, submit = server_layer, _submitter(server_loop)
        else:
            background = _background_layer(layer_url)
            layer, submit = background.layer, background.submit
        # The span starts here, in the caller's thread, so it joins the caller's trace.
        with _producer(group, layer) as producer:
            future = submit(layer.group_send(group, producer.wrap(message)))
            try:
                future.result(timeout)
            finally:
                future.cancel()
    except (TimeoutError, concurrent.futures.TimeoutError, OSError, ConnectionError) as exc:
        raise _unavailable(group, timeout, layer_url or os.environ.get(LAYER_URL_ENV), exc) from exc


def _running_loop() -> asyncio.AbstractEventLoop | None:
    try:
        return asyncio.get_running_loop()
    except RuntimeError:
        return None
