"""One ASGI connection (the lifespan, a WebSocket) run in process, as a server runs it.

asgiref's ApplicationCommunicator does nearly this, but cancels the application when a
receive times out, and a test that waits briefly for a result that should not come must
leave the subscription running. Here a timeout only stops the waiting. As under a server,
the application runs in a task of its own, in a fresh context (a `context` given here
carries the test client's connection watch, gqlchannels.testing.layer_watch).
"""

from __future__ import annotations

import asyncio
import collections
import contextvars
from collections.abc import Callable
from typing import Any, TypeVar

from ..asgi.routing import ASGIApp, Scope

T = TypeVar("T")


class ASGISession:
    def __init__(self, app: ASGIApp, scope: Scope, context: contextvars.Context | None = None) -> None:
        self._input: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
        self.output: collections.deque[dict[str, Any]] = collections.deque()
        self._changed = asyncio.Event()
        self.task = asyncio.get_running_loop().create_task(
            self._run(app, scope), context=context or contextvars.Context())
        self.task.add_done_callback(lambda _: self.notify())

    async def _run(self, app: ASGIApp, scope: Scope) -> None:
        await app(scope, self._input.get, self._send)

    async def _send(self, message: dict[str, Any]) -> None:
        self.output.append(message)
        self.notify()

    def send(self, message: dict[str, Any]) -> None:
        """Hand the application its next `receive()` message."""
        self._input.put_nowait(message)

    def notify(self) -> None:
        """Something a waiter may be waiting for has happened (output, a layer event, the end)."""
        self._changed.set()

    async def wait_for(self, found: Callable[[], T | None], timeout: float, timed_out: Callable[[], Exception]) -> T:
        """The first non-None value of `found()`, checked after each change; raise the
        `timed_out()` exception if there is none within `timeout` seconds."""
        try:
            async with asyncio.timeout(timeout):
                while True:
                    self._changed.clear()
                    value = found()
                    if value is not None:
                        return value
                    await self._changed.wait()
        except TimeoutError:
            raise timed_out() from None

    def failure(self) -> BaseException | None:
        """The exception the application raised, once it has ended with one."""
        if not self.task.done() or self.task.cancelled():
            return None
        return self.task.exception()

    async def end(self, timeout: float) -> bool:
        """Wait up to `timeout` seconds for the application to return; cancel it after that.
        True if it returned by itself."""
        done, _ = await asyncio.wait([self.task], timeout=timeout)
        if done:
            return True
        self.task.cancel()
        await asyncio.gather(self.task, return_exceptions=True)
        return False
