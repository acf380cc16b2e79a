"""Turn a channel layer URL into Django's CHANNEL_LAYERS setting.

`memory://` gives gqlchannels' in-process layer; `amqp://` and `amqps://` give the RabbitMQ
layer. The URL carries everything: credentials, host, port, vhost, and layer tuning in the
query string (`?local_capacity=1000`). Parsing happens once at start, so a bad URL is an
error before the server binds, not a stack trace on the first subscription.
"""

from __future__ import annotations

import dataclasses
from typing import Any
from urllib.parse import parse_qsl, quote, unquote, urlsplit, urlunsplit

from channels.layers import BaseChannelLayer
from django.utils.module_loading import import_string

from ..errors import ConfigError

MEMORY_BACKEND = "gqlchannels.layers.inprocess.InProcessChannelLayer"
AMQP_BACKEND = "gqlchannels.layers.amqp.RabbitMQChannelLayer"

# Query-string options each backend accepts, with the type each value is parsed to.
# Anything else in the query string is an error: a typo must not be silently ignored.
MEMORY_OPTIONS: dict[str, type] = {"capacity": int, "expiry": float, "group_expiry": float}
AMQP_OPTIONS: dict[str, type] = {
    "local_capacity": int,
    "remote_capacity": int,
    "expiry": float,
    "local_expiry": float,
    "groups_exchange": str,
    "publish_timeout": float,
    "connect_timeout": float,
    "heartbeat": int,
    "connection_name": str,
    "reconnect_max_delay": float,
    "binding_check_interval": float,
    # TLS, with amqps:// only (passed to aiormq)
    "cafile": str,
    "certfile": str,
    "keyfile": str,
    "no_verify_ssl": str,
}
TLS_OPTIONS = ("cafile", "certfile", "keyfile", "no_verify_ssl")

AMQP_DEFAULT_PORTS = {"amqp": 5672, "amqps": 5671}


@dataclasses.dataclass(frozen=True)
class LayerSpec:
    """A parsed layer URL: which backend, with which CONFIG."""

    scheme: str
    backend: str
    config: dict[str, Any]

    @property
    def is_memory(self) -> bool:
        return self.scheme == "memory"

    def channel_layers_setting(self) -> dict[str, Any]:
        return {"default": {"BACKEND": self.backend, "CONFIG": dict(self.config)}}

    def make_layer(self) -> BaseChannelLayer:
        """A new layer of this kind, built directly rather than through Django's settings.
        The RabbitMQ layer binds to the event loop that first uses it: use it in one loop."""
        return import_string(self.backend)(**self.config)


def mask_url(url: str) -> str:
    """The URL with its password replaced by ***, safe to print and log."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return "<unparseable URL>"
    if parts.password is None:
        return url
    netloc = parts.netloc.rsplit("@", 1)[1]
    user = parts.username or ""
    return urlunsplit(parts._replace(netloc=f"{user}:***@{netloc}"))


def parse_layer_url(url: str) -> LayerSpec:
    """Parse GQLCHANNELS_LAYER_URL / --layer; raise ConfigError naming what is wrong."""
    try:
        parts = urlsplit(url.strip())
        port = parts.port  # raises ValueError for a non-numeric or out-of-range port
    except ValueError as exc:
        raise ConfigError(f"layer URL {mask_url(url)!r} is malformed ({exc}).") from None
    scheme = parts.scheme.lower()
    if scheme == "memory":
        if parts.netloc or parts.path not in ("", "/"):
            raise ConfigError(
                f"layer URL {mask_url(url)!r}: memory:// takes no host or path; "
                "use plain 'memory://' (optionally with ?capacity=N&expiry=S&group_expiry=S)."
            )
        options = _parse_options(url, parts.query, MEMORY_OPTIONS)
        return LayerSpec("memory", MEMORY_BACKEND, options)
    if scheme in AMQP_DEFAULT_PORTS:
        if not parts.hostname:
            raise ConfigError(
                f"layer URL {mask_url(url)!r} has no host; "
                "write it as amqp://user:password@host:5672/vhost."
            )
        options = _parse_options(url, parts.query, AMQP_OPTIONS)
        tls = [name for name in TLS_OPTIONS if name in options]
        if tls and scheme != "amqps":
            # A TLS option on a plain connection would never be used (channels-rabbitmq hangs).
            raise ConfigError(
                f"layer URL {mask_url(url)!r} sets {', '.join(tls)} but is not a TLS URL; "
                "write amqps://... (port 5671 by default) to connect with TLS."
            )
        if options.get("heartbeat") == 0:
            raise ConfigError(
                f"layer URL {mask_url(url)!r}: heartbeat=0 turns heartbeats off, and a dead broker "
                "connection would then go unnoticed; use a number of seconds such as 30."
            )
        options["url"] = _normalized_amqp_url(scheme, parts, port)
        return LayerSpec(scheme, AMQP_BACKEND, options)
    raise ConfigError(
        f"layer URL {mask_url(url)!r} has an unknown scheme {parts.scheme!r}; "
        "use memory:// (one process) or amqp://user:password@host:5672/vhost "
        "(amqps:// for TLS)."
    )


def _normalized_amqp_url(scheme: str, parts: Any, port: int | None) -> str:
    """An explicit URL: port always given, vhost always given ('/' encoded as %2F).

    A stock broker has only the vhost '/'. An AMQP URL without a path, or with a bare '/',
    means that vhost here, whatever default the layer library would otherwise pick.
    """
    path = parts.path
    vhost = "/" if path in ("", "/") else unquote(path[1:])
    user = quote(unquote(parts.username or "guest"), safe="")
    password = quote(unquote(parts.password or "guest"), safe="")
    host = parts.hostname
    if ":" in host:  # an IPv6 literal needs its brackets back
        host = f"[{host}]"
    netloc = f"{user}:{password}@{host}:{port or AMQP_DEFAULT_PORTS[scheme]}"
    return urlunsplit((scheme, netloc, "/" + quote(vhost, safe=""), "", ""))


def _parse_options(url: str, query: str, allowed: dict[str, type]) -> dict[str, Any]:
    options: dict[str, Any] = {}
    for key, raw in parse_qsl(query, keep_blank_values=True, strict_parsing=False):
        if key not in allowed:
            raise ConfigError(
                f"layer URL {mask_url(url)!r}: unknown option {key!r}; "
                f"known options are {', '.join(sorted(allowed))}."
            )
        kind = allowed[key]
        try:
            value = kind(raw)
        except ValueError:
            raise ConfigError(
                f"layer URL {mask_url(url)!r}: option {key}={raw!r} "
                f"must be {'an integer' if kind is int else 'a number'}."
            ) from None
        if kind in (int, float) and value < 0:
            raise ConfigError(f"layer URL {mask_url(url)!r}: option {key}={raw!r} must not be negative.")
        options[key] = value
    return options
