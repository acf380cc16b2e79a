"""gqlchannels: a standalone GraphQL server for Strawberry schemas, with subscriptions fanned
out through a Django Channels layer (in memory, or RabbitMQ across processes and machines)."""

from .app import build_application
from .errors import AppImportError, ConfigError, GqlchannelsError

__version__ = "0.1.0"

__all__ = ["AppImportError", "ConfigError", "GqlchannelsError", "__version__", "build_application"]
