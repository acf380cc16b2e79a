"""channels-rabbitmq, adapted to gqlchannels' layer URL and lifecycle.

channels-rabbitmq takes a `host` URL whose default vhost is `asgi` (a stock broker has only
`/`), has no way to wait for the first connection and no state to report. This adapter
takes the normalized URL from `gqlchannels.layers`, adds `connect(timeout)` for startup and
`state()` for /readyz, and leaves the wire format (exchange, queue names, msgpack) alone.
"""

from __future__ import annotations

import asyncio
import dataclasses
import time
from typing import Any

from channels_rabbitmq.core import RabbitmqChannelLayer


@dataclasses.dataclass(frozen=True)
class LayerState:
    """What /readyz and metrics report about the broker connection."""

    connected: bool
    since: float  # time.time() of the last change of `connected`


class RabbitMQChannelLayer(RabbitmqChannelLayer):
    def __init__(
        self,
        url: str,
        local_capacity: int = 100,
        remote_capacity: int = 100,
        expiry: float = 60,
        local_expiry: float | None = 60,
        groups_exchange: str = "groups",
        **_later_options: Any,  # tuning the robust layer (issue 3) reads; accepted, not yet used
    ) -> None:
        super().__init__(
            host=url,
            local_capacity=local_capacity,
            remote_capacity=remote_capacity,
            expiry=expiry,
            # A reader that never reads must not stall the whole process (DESIGN.md, #6).
            local_expiry=local_expiry,
            groups_exchange=groups_exchange,
        )
        self._created = time.time()

    @property
    def carehare_connection(self) -> asyncio.Future[Any]:
        # Shielded: a caller cancelled while waiting for the broker (a timeout, a client
        # that disconnects) must not cancel the connection future every other caller
        # shares; upstream that leaves the layer raising CancelledError forever (DESIGN.md #2).
        return asyncio.shield(RabbitmqChannelLayer.carehare_connection.fget(self))

    async def connect(self, timeout: float) -> None:
        """Wait until the broker connection is up; raise TimeoutError after `timeout` s."""
        await asyncio.wait_for(self.carehare_connection, timeout)

    def state(self) -> LayerState:
        future = self._carehare_connection
        connected = future.done() and not future.cancelled() and future.exception() is None
        return LayerState(connected=connected, since=self._created)
