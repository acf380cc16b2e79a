"""The one settings object the CLI builds and every worker process rebuilds.

uvicorn spawns workers (and the reloader's child) as fresh processes that import the app
by name, so settings cannot be passed as Python objects. The CLI serialises them into one
environment variable that the app factory reads back: one parser (click), one format.
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
import resource

from ..config.limits import Limits
from ..errors import ConfigError
from .layer_url import LayerSpec, parse_layer_url

SETTINGS_ENV = "GQLCHANNELS_INTERNAL_SETTINGS"
RESERVED_PATHS = frozenset({"/healthz", "/readyz", "/metrics"})  # also served to connections over the cap
LOG_LEVELS = ("critical", "error", "warning", "info", "debug", "trace")
LOG_FORMATS = ("text", "json")
_DEFAULT_LIMITS = Limits()


# Descriptors that are not client connections: the listening socket, the event loop, the
# broker connection, log and metrics files, stdio. Past the open-file limit less these, a new
# connection is closed unanswered.
RESERVED_DESCRIPTORS = 32
# The default cap on connections leaves this share of the open-file limit (at least
# MIN_HEADROOM descriptors) for those and for answering connections over the cap.
HEADROOM_SHARE = 0.1
MIN_HEADROOM = 64


@dataclasses.dataclass(frozen=True)
class ConnectionLimits:
    """What the HTTP protocol enforces for each worker (gqlchannels.server.connection_guard)."""

    header_timeout: float  # seconds for a complete request head
    max_connections: int | None  # open connections served; None: no cap (no open-file limit)
    descriptor_ceiling: int | None  # open connections past which a new one is closed at once


def open_file_limit() -> int | None:
    """This process's open-file limit (soft RLIMIT_NOFILE; workers inherit it), None if none."""
    soft, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
    return None if soft == resource.RLIM_INFINITY else soft


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
    fast_paths: bool = True
    shutdown_timeout: float = 10.0
    forwarded_allow_ips: str = "127.0.0.1"
    ws_ping_interval: float = 20.0
    # permessage-deflate: every browser offers it, and per connection it costs about 41 KB of
    # zlib state (2,000 idle sockets: 85 KB instead of 44 KB each) plus compressing every
    # message once per subscriber. Off, as in Node's `ws`, which graphql-ws servers run on.
    ws_compression: bool = False
    max_ws_message_size: int = 1024 * 1024
    max_body_size: int = _DEFAULT_LIMITS.max_body_size
    body_timeout: float = _DEFAULT_LIMITS.body_timeout
    max_depth: int = _DEFAULT_LIMITS.max_depth
    max_tokens: int = _DEFAULT_LIMITS.max_tokens
    max_aliases: int = _DEFAULT_LIMITS.max_aliases
    max_selection_fields: int = _DEFAULT_LIMITS.max_selection_fields
    max_subscriptions: int = _DEFAULT_LIMITS.max_subscriptions
    connection_init_timeout: float = _DEFAULT_LIMITS.connection_init_timeout
    header_timeout: float = 10.0
    max_connections: int | None = None  # None: derived from the open-file limit
    otel: bool = False  # OpenTelemetry tracing (resolved by the CLI from --otel and OTEL_*)
    apq: bool = True
    persisted_operations: str | None = None  # the manifest's path
    only_persisted: bool = False

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
                     "max_selection_fields", "max_subscriptions", "connection_init_timeout", "shutdown_timeout",
                     "header_timeout", "body_timeout"):
            if getattr(self, name) <= 0:
                raise ConfigError(f"--{name.replace('_', '-')} {getattr(self, name)} must be greater than 0.")
        if self.max_connections is not None:
            ceiling = self.connection_limits.descriptor_ceiling
            if self.max_connections < 1:
                raise ConfigError(f"--max-connections {self.max_connections} must be at least 1.")
            if ceiling is not None and self.max_connections > ceiling:
                raise ConfigError(
                    f"--max-connections {self.max_connections} is more than this process can hold open: its "
                    f"open-file limit is {open_file_limit()}, {RESERVED_DESCRIPTORS} of them kept for the "
                    "broker, logs and listening socket. Raise the limit (ulimit -n, or LimitNOFILE= in a "
                    f"systemd unit) or set --max-connections {ceiling} or less."
                )
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
        if self.only_persisted and not self.persisted_operations:
            raise ConfigError("--only-persisted needs the manifest of the operations to serve: "
                              "--persisted-operations PATH.")
        if self.reload and self.workers > 1:
            raise ConfigError("--reload runs a single worker; drop --workers or --reload.")

    @property
    def layer(self) -> LayerSpec:
        return parse_layer_url(self.layer_url)

    @property
    def limits(self) -> Limits:
        return Limits(
            max_body_size=self.max_body_size,
            body_timeout=self.body_timeout,
            max_depth=self.max_depth,
            max_tokens=self.max_tokens,
            max_aliases=self.max_aliases,
            max_selection_fields=self.max_selection_fields,
            max_subscriptions=self.max_subscriptions,
            connection_init_timeout=self.connection_init_timeout,
        )

    @property
    def connection_limits(self) -> ConnectionLimits:
        file_limit = open_file_limit()
        if file_limit is None:
            return ConnectionLimits(self.header_timeout, self.max_connections, None)
        derived = max(1, file_limit - max(MIN_HEADROOM, math.ceil(file_limit * HEADROOM_SHARE)))
        return ConnectionLimits(self.header_timeout, self.max_connections or derived,
                                max(1, file_limit - RESERVED_DESCRIPTORS))

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
