"""channels-rabbitmq's wire format, so processes on either layer interoperate.

A message is a msgpack map: the sender's dict plus `__asgi_group__` (published to the groups
exchange, routing key = group) or `__asgi_channel__` (published to the default exchange,
routing key = the receiving process's queue, the part of the channel name before "!").
"""

from __future__ import annotations

from typing import Any

import msgpack

from ...errors import MessageNotSerializable
from ...events.messages import check_message

GROUP_KEY = "__asgi_group__"
CHANNEL_KEY = "__asgi_channel__"


class Undecodable(ValueError):
    """Bytes from the broker that are not a message in this format."""


def encode(message: dict[str, Any], *, group: str | None = None, channel: str | None = None) -> bytes:
    """The body for `message` to a group or a channel; refuses what the receivers could not read."""
    check_message(message)
    if GROUP_KEY in message or CHANNEL_KEY in message:
        raise MessageNotSerializable(f"a message must not hold the reserved keys {GROUP_KEY!r} or {CHANNEL_KEY!r}.")
    body = dict(message)
    if group is not None:
        body[GROUP_KEY] = group
    else:
        body[CHANNEL_KEY] = channel
    return msgpack.packb(body, use_bin_type=True)


def decode(body: bytes) -> tuple[str | None, str | None, dict[str, Any]]:
    """(channel, group, message) from a body; exactly one of channel and group is set."""
    try:
        # strict_map_key=False: a non-string key from some other sender must not raise here
        # (in channels-rabbitmq it kills the reader of every receiving process).
        data = msgpack.unpackb(body, raw=False, strict_map_key=False)
    except Exception as exc:
        raise Undecodable(f"not msgpack ({type(exc).__name__}: {exc})") from None
    if not isinstance(data, dict):
        raise Undecodable(f"a msgpack {type(data).__name__}, not a map")
    channel, group = data.pop(CHANNEL_KEY, None), data.pop(GROUP_KEY, None)
    if (channel is None) == (group is None) or not isinstance(channel or group, str):
        raise Undecodable("it names no recipient, or two")
    return channel, group, data
