"""What a channel layer of gqlchannels reports about itself, for /readyz and /metrics."""

from __future__ import annotations

import dataclasses


@dataclasses.dataclass(frozen=True)
class LayerState:
    """What /readyz and /metrics report about the layer."""

    connected: bool
    since: float  # wall time of the last change of `connected`
    reconnects: int
    published: int
    delivered: int
    dropped: int  # in all: the sum of the reasons below
    groups: int  # groups this process is bound to
    last_error: str | None
    ready: bool = False  # connected and allowed to publish
    reason: str | None = None  # why not ready, in words; None when ready
    # Why messages were dropped.
    dropped_full: int = 0  # a receiver's buffer was full
    dropped_expired: int = 0  # waited longer than the expiry for its receiver
    dropped_at_broker: int = 0  # refused by a full broker queue, or returned by the broker (RabbitMQ)
    undecodable: int = 0  # a message from the broker that does not decode (RabbitMQ)
