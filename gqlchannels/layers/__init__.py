"""Channel layers: the in-process layer (`memory://`), the RabbitMQ layer (`amqp://`), and the
per-receiver buffers and local fan-out both use."""

from .amqp import LayerState, RabbitMQChannelLayer
from .inprocess import InProcessChannelLayer

__all__ = ["InProcessChannelLayer", "LayerState", "RabbitMQChannelLayer"]
