"""What a channel-layer message may hold, checked before it is sent.

RabbitMQ carries messages as msgpack and other layers have similar limits, so a message is a
dict with a string "type" whose values are msgpack-native: None, bool, int (64-bit), float,
str, bytes, and lists and string-keyed dicts of those. Checking here, at the sender, turns a
datetime buried in a payload into an error that names it, instead of a failure in another
process (docs/internals.md: one bad message used to kill every receiver's reader).
"""

from __future__ import annotations

from typing import Any

from channels.layers import BaseChannelLayer

from ..errors import InvalidName, MessageNotSerializable

_INT_MIN, _INT_MAX = -(2**63), 2**64 - 1
MAX_NAME_LENGTH = 99  # what Channels' layers accept (BaseChannelLayer.MAX_NAME_LENGTH = 100, exclusive)


def check_group(group: str) -> None:
    """Raise InvalidName unless `group` is a valid channel-layer group name."""
    if not isinstance(group, str) or len(group) > MAX_NAME_LENGTH \
            or not BaseChannelLayer.group_name_regex.match(group):
        raise InvalidName(
            f"group name {group!r:.120} is not valid: use 1 to {MAX_NAME_LENGTH} ASCII letters, "
            "digits, '-', '_' or '.'."
        )


def check_channel(channel: str, specific: bool = True) -> None:
    """Raise InvalidName unless `channel` is a valid channel name: a process-specific one
    (from a layer's new_channel(), with a "!") unless `specific` is false."""
    if not isinstance(channel, str) or len(channel) > MAX_NAME_LENGTH \
            or not BaseChannelLayer.channel_name_regex.match(channel) or (specific and "!" not in channel):
        raise InvalidName(
            f"channel name {channel!r:.120} is not valid: use a name from the layer's new_channel() "
            f"(at most {MAX_NAME_LENGTH} characters)."
        )


def check_message(message: Any) -> None:
    """Raise MessageNotSerializable naming the first value the layer could not carry."""
    if not isinstance(message, dict):
        raise MessageNotSerializable(f"a message must be a dict, not {type(message).__name__}.")
    if not isinstance(message.get("type"), str) or not message["type"]:
        raise MessageNotSerializable(
            "a message needs a 'type' string naming what it is, e.g. {'type': 'chat.message', ...}."
        )
    _check_value(message, "message")


def _check_value(value: Any, where: str) -> None:
    if value is None or isinstance(value, (bool, float, str, bytes)):
        return
    if isinstance(value, int):
        if not _INT_MIN <= value <= _INT_MAX:
            raise MessageNotSerializable(f"{where} = {value} does not fit in 64 bits; send it as a string.")
        return
    if isinstance(value, (list, tuple)):
        for index, item in enumerate(value):
            _check_value(item, f"{where}[{index}]")
        return
    if isinstance(value, dict):
        for key, item in value.items():
            if not isinstance(key, str):
                raise MessageNotSerializable(
                    f"{where} has the key {key!r} of type {type(key).__name__}; keys must be strings."
                )
            _check_value(item, f"{where}[{key!r}]")
        return
    raise MessageNotSerializable(
        f"{where} is a {type(value).__module__}.{type(value).__qualname__} ({value!r:.80}), which the "
        "channel layer cannot carry; convert it first (e.g. a datetime to an ISO 8601 string)."
    )
