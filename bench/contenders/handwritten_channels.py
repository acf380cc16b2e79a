"""Contender: Strawberry's Channels integration wired by hand, as its documentation shows
(GraphQLProtocolTypeRouter, Django settings configured in code, channels_rabbitmq's layer)."""

import django
from django.conf import settings

settings.configure(
    INSTALLED_APPS=["channels"],
    CHANNEL_LAYERS={"default": {
        "BACKEND": "channels_rabbitmq.core.RabbitmqChannelLayer",
        "CONFIG": {"host": "amqp://guest:guest@127.0.0.1:5672/%2F"},
    }},
    ALLOWED_HOSTS=["*"],
    SECRET_KEY="bench",
)
django.setup()

from strawberry.channels import GraphQLProtocolTypeRouter  # noqa: E402

from bench.contenders.schemas import handwritten  # noqa: E402

application = GraphQLProtocolTypeRouter(handwritten)
