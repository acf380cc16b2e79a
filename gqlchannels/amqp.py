"""The RabbitMQ channel layer under the name it was first documented with.

Django settings that name `gqlchannels.amqp.RabbitMQChannelLayer` as a CHANNEL_LAYERS backend
keep working; the layer lives in gqlchannels.layers.amqp.
"""

from .layers.amqp import LayerState, RabbitMQChannelLayer

__all__ = ["LayerState", "RabbitMQChannelLayer"]
