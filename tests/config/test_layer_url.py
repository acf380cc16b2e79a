"""Layer URLs become the CHANNEL_LAYERS setting; a stock broker's vhost '/' is the default."""

from __future__ import annotations

import pytest

from gqlchannels.config.layer_url import AMQP_BACKEND, MEMORY_BACKEND, mask_url, parse_layer_url
from gqlchannels.errors import ConfigError


def test_memory_with_options() -> None:
    spec = parse_layer_url("memory://?capacity=500&expiry=30")
    assert spec.is_memory
    assert spec.channel_layers_setting() == {"default": {"BACKEND": MEMORY_BACKEND, "CONFIG": {"capacity": 500, "expiry": 30}}}


@pytest.mark.parametrize(("url", "normalized"), [
    # No path and a bare "/" both mean the stock vhost "/", never the library's "asgi".
    ("amqp://guest:guest@rabbit", "amqp://guest:guest@rabbit:5672/%2F"),
    ("amqp://guest:guest@rabbit:5673/", "amqp://guest:guest@rabbit:5673/%2F"),
    ("amqp://u:p@rabbit/%2F", "amqp://u:p@rabbit:5672/%2F"),
    ("amqp://u:p@rabbit/prod", "amqp://u:p@rabbit:5672/prod"),
    ("amqps://u:p%40ss@rabbit/prod", "amqps://u:p%40ss@rabbit:5671/prod"),
    ("amqp://rabbit", "amqp://guest:guest@rabbit:5672/%2F"),
    ("amqp://u:p@[::1]:5672/", "amqp://u:p@[::1]:5672/%2F"),
])
def test_amqp_url_normalized(url: str, normalized: str) -> None:
    spec = parse_layer_url(url)
    assert spec.backend == AMQP_BACKEND
    assert spec.config["url"] == normalized


def test_amqp_tuning_from_query_string() -> None:
    spec = parse_layer_url("amqp://rabbit/?local_capacity=1000&publish_timeout=1.5&connection_name=api")
    assert spec.config == {"url": "amqp://guest:guest@rabbit:5672/%2F", "local_capacity": 1000,
                           "publish_timeout": 1.5, "connection_name": "api"}


@pytest.mark.parametrize(("url", "fragment"), [
    ("redis://localhost", "unknown scheme 'redis'"),
    ("amqp://:5672/", "has no host"),
    ("amqp://rabbit:99999/", "malformed"),
    ("amqp://rabbit/?local_capacity=-1", "must not be negative"),
    ("amqp://rabbit/?heartbeat=often", "must be an integer"),
    ("memory://?capasity=3", "unknown option 'capasity'"),
])
def test_bad_urls_name_the_problem(url: str, fragment: str) -> None:
    with pytest.raises(ConfigError, match=fragment):
        parse_layer_url(url)


def test_password_masked_in_errors() -> None:
    with pytest.raises(ConfigError) as error:
        parse_layer_url("amqp://u:hunter2@rabbit/?bogus=1")
    assert "hunter2" not in str(error.value)
    assert mask_url("amqp://u:hunter2@rabbit/") == "amqp://u:***@rabbit/"


@pytest.mark.parametrize("option", ["cafile=/etc/ca.pem", "certfile=/c.pem", "keyfile=/k.pem", "no_verify_ssl=1"])
def test_tls_options_need_amqps(option: str) -> None:
    with pytest.raises(ConfigError, match="is not a TLS URL; write amqps://"):
        parse_layer_url(f"amqp://rabbit/?{option}")
    assert parse_layer_url(f"amqps://rabbit/?{option}").config["url"] == "amqps://guest:guest@rabbit:5671/%2F"


def test_heartbeat_zero_refused() -> None:
    with pytest.raises(ConfigError, match="heartbeat=0 turns heartbeats off"):
        parse_layer_url("amqp://rabbit/?heartbeat=0")
