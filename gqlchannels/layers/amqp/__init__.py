"""The RabbitMQ channel layer that `amqp://` and `amqps://` URLs select."""

from ...errors import LayerUnavailable, MessageNotSerializable
from . import aiormq_logging
from .layer import LayerState, RabbitMQChannelLayer

aiormq_logging.install()

__all__ = ["LayerState", "LayerUnavailable", "MessageNotSerializable", "RabbitMQChannelLayer"]
