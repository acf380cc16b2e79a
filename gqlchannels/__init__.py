"""gqlchannels: a standalone GraphQL server for Strawberry schemas, with subscriptions fanned
out through a Django Channels layer (in memory, or RabbitMQ across processes and machines)."""

from .asgi.app import build_application
from .auth import AuthRequest, Unauthorized
from .config.limits import Limits
from .errors import AppImportError, ConfigError, GqlchannelsError, LayerUnavailable, MessageNotSerializable
from .events.listen import Events, GroupListener
from .events.publish import apublish, publish

__version__ = "0.1.0"

__all__ = [
    "AppImportError",
    "AuthRequest",
    "ConfigError",
    "Events",
    "GqlchannelsError",
    "GroupListener",
    "LayerUnavailable",
    "Limits",
    "MessageNotSerializable",
    "Unauthorized",
    "__version__",
    "apublish",
    "build_application",
    "publish",
]
