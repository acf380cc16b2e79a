"""The one settings object the CLI builds and every worker process rebuilds.

uvicorn spawns workers (and the reloader's child) as fresh processes that import the app
by name, so settings cannot be passed as Python objects. The CLI serialises them into one
environment variable that the app factory reads back: one parser (click), one format.
"""

from __future__ import annotations

import dataclasses
import json
import os

from .errors import ConfigError
from .layers import LayerSpec, parse_layer_url
from .limits import Limits

SETTINGS_ENV = "GQLCHANNELS_INTERNAL_SETTINGS"
RESERVED_PATHS = frozenset({"/healthz", "/readyz", "/metrics"})
LOG_LEVELS = ("critical", "error", "warning", "info", "debug", "trace")
LOG_FORMATS = ("text", "json")
_DEFAULT_LIMITS = Limits()


def default(name: str) -> object:
    """The default of a setting, so the CLI's options and this class cannot disagree."""
    return Settings.__dataclass_fields__[name].default


@dataclasses.dataclass(frozen=True)
class Settings:
    app: str
    host: str = "127.0.0.1"
    port: int = 8000
    path: str = "/graphql"
    layer_url: str = "memory://"
    workers: int = 1
    app_dir: str = "."
    reload: bool = False
    log_level: str = "info"
    graphql_ide: bool = True
    allowed_origins: tuple[str, ...] = ()
    log_format: str = "text"
    debug: bool = False
    introspection: bool = True
    auth: str | None = None
    sse: bool = False
    shutdown_timeout: float = 10.0
    forwarded_allow_ips: str = "127.0.0.1"
    ws_ping_interval: float = 20.0
    # permessage-deflate: every browser offers it, and per connection it costs about 41 KB of
    # zlib state (2,000 idle sockets: 85 KB instead of 44 KB each) plus compressing every
    # message once per subscriber. Off, as in Node's `ws`, which graphql-ws servers run on.
    ws_compression: bool = False
    max_ws_message_size: int = 1024 * 1024
    max_body_size: int = _DEFAULT_LIMITS.max_body_size
    max_depth: int = _DEFAULT_LIMITS.max_depth
    max_tokens: int = _DEFAULT_LIMITS.max_tokens
    max_aliases: int = _DEFAULT_LIMITS.max_aliases
    max_subscriptions: int = _DEFAULT_LIMITS.max_subscriptions
    connection_init_timeout: float = _DEFAULT_LIMITS.connection_init_timeout

    def __post_init__(self) -> None:
        if not self.path.startswith("/") or self.path.rstrip("/") == "":
            raise ConfigError(
                f"--path {self.path!r} must start with '/' and name a path, e.g. /graphql."
            )
        if self.path.rstrip("/") in RESERVED_PATHS:
            raise ConfigError(
                f"--path {self.path!r} is taken by the server's own endpoint; choose another."
            )
        if not 0 <= self.port <= 65535:
            raise ConfigError(f"--port {self.port} is not a TCP port (0-65535).")
        if self.workers < 1:
            raise ConfigError(f"--workers {self.workers} must be at least 1.")
        for name in ("max_body_size", "max_ws_message_size", "max_depth", "max_tokens", "max_aliases",
                     "max_subscriptions", "connection_init_timeout", "shutdown_timeout"):
            if getattr(self, name) <= 0:
                raise ConfigError(f"--{name.replace('_', '-')} {getattr(self, name)} must be greater than 0.")
        if self.ws_ping_interval < 0:
            raise ConfigError(f"--ws-ping-interval {self.ws_ping_interval} must be 0 (off) or more seconds.")
        if self.log_format not in LOG_FORMATS:
            raise ConfigError(f"--log-format {self.log_format!r} must be one of {', '.join(LOG_FORMATS)}.")
        if self.log_level not in LOG_LEVELS:
            raise ConfigError(f"--log-level {self.log_level!r} must be one of {', '.join(LOG_LEVELS)}.")
        spec = self.layer  # parse now: a bad URL fails at start, not on first use
        if self.workers > 1 and spec.is_memory:
            raise ConfigError(
                f"--workers {self.workers} with the memory:// layer would give each worker its "
                "own private layer, so a subscriber on one worker would never see a mutation "
                "handled by another. Use one worker, or a shared broker: "
                "--layer amqp://user:password@host:5672/vhost."
            )
        if self.reload and self.workers > 1:
            raise ConfigError("--reload runs a single worker; drop --workers or --reload.")

    @property
    def layer(self) -> LayerSpec:
        return parse_layer_url(self.layer_url)

    @property
    def limits(self) -> Limits:
        return Limits(
            max_body_size=self.max_body_size,
            max_depth=self.max_depth,
            max_tokens=self.max_tokens,
            max_aliases=self.max_aliases,
            max_subscriptions=self.max_subscriptions,
            connection_init_timeout=self.connection_init_timeout,
        )

    def to_json(self) -> str:
        return json.dumps(dataclasses.asdict(self))

    @classmethod
    def from_json(cls, text: str) -> Settings:
        data = json.loads(text)
        data["allowed_origins"] = tuple(data.get("allowed_origins", ()))
        return cls(**data)

    def export_to_environment(self) -> None:
        os.environ[SETTINGS_ENV] = self.to_json()

    @classmethod
    def from_environment(cls) -> Settings:
        try:
            text = os.environ[SETTINGS_ENV]
        except KeyError:
            raise ConfigError(
                f"{SETTINGS_ENV} is not set: start the server with 'gqlchannels serve APP', "
                "or build the app yourself with gqlchannels.build_application(schema)."
            ) from None
        return cls.from_json(text)
