"""The RabbitMQ channel layer that `amqp://` and `amqps://` URLs select."""

from .layer import LayerState, RabbitMQChannelLayer

__all__ = ["LayerState", "RabbitMQChannelLayer"]
