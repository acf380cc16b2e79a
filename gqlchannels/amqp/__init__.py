"""The RabbitMQ channel layer that `amqp://` and `amqps://` URLs select."""

from ..errors import LayerUnavailable, MessageNotSerializable
from .layer import LayerState, RabbitMQChannelLayer

__all__ = ["LayerState", "LayerUnavailable", "MessageNotSerializable", "RabbitMQChannelLayer"]
