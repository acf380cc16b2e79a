"""Boot Django as a library: settings built in code, no settings module, no database."""

from __future__ import annotations

import logging
import os
import secrets
from typing import Any

import django
from channels import DEFAULT_CHANNEL_LAYER
from django.conf import settings as django_settings

from ..errors import ConfigError
from ..events.publish import LAYER_URL_ENV
from .layer_url import LayerSpec, mask_url, parse_layer_url

logger = logging.getLogger("gqlchannels")


def configure_django(layer: LayerSpec, *, debug: bool = False) -> None:
    """Configure and set up Django once per process.

    When the user already runs a Django project (DJANGO_SETTINGS_MODULE is set, or settings
    were configured before us), their settings win: they mount our app inside their own
    router and their CHANNEL_LAYERS is the one to use. Otherwise we configure the minimum
    Channels and Strawberry need.
    """
    if not django_is_configured():
        django_settings.configure(**django_settings_for(layer, debug=debug))
    django.setup(set_prefix=False)


def layer_url_or_default(layer: str | None) -> str:
    """The layer URL to use when nobody else chose one: the argument, $GQLCHANNELS_LAYER_URL,
    else memory://."""
    return layer or os.environ.get(LAYER_URL_ENV) or "memory://"


class _ChosenHere:
    """The layer URL a project without CHANNEL_LAYERS was given here, once per process."""

    url: str | None = None


def ensure_channel_layer(layer: str | None) -> None:
    """Inside a configured Django project: its CHANNEL_LAYERS decides, and a second opinion
    (`layer`) is an error. A project without one (a fresh `startproject` has none) would
    leave Channels without a layer, and every publish and subscription failing; it gets
    the layer gqlchannels would use standalone instead, said once in the log.
    """
    configured = getattr(django_settings, "CHANNEL_LAYERS", None) or {}
    if DEFAULT_CHANNEL_LAYER in configured:
        if layer is not None and layer != _ChosenHere.url:
            raise ConfigError(
                "Django's CHANNEL_LAYERS setting already chooses the layer; drop the layer= "
                "argument, or remove CHANNEL_LAYERS from your Django settings."
            )
        return
    url = layer_url_or_default(layer)
    spec = parse_layer_url(url)
    # Settings are read by Channels when it first builds the layer, which is later: set here,
    # as a settings module would have, before anything asked for it.
    django_settings.CHANNEL_LAYERS = {**configured, **spec.channel_layers_setting()}
    _ChosenHere.url = url
    if spec.is_memory:
        logger.warning(
            "Django's settings have no CHANNEL_LAYERS: using gqlchannels' in-process layer "
            "(memory://), so subscribers only see events published in this process. To share "
            "them between processes, set CHANNEL_LAYERS or %s=amqp://user:password@host:5672/vhost.",
            LAYER_URL_ENV,
        )
    else:
        logger.info("Django's settings have no CHANNEL_LAYERS: using the channel layer %s", mask_url(url))


def django_is_configured() -> bool:
    """True when a settings module or an earlier configure() already decided Django's settings."""
    return django_settings.configured or bool(os.environ.get("DJANGO_SETTINGS_MODULE"))


def django_settings_for(layer: LayerSpec, *, debug: bool = False) -> dict[str, Any]:
    return {
        "DEBUG": debug,
        # No models, no admin, no auth: Channels' routing and layers need nothing else.
        "INSTALLED_APPS": ["channels"],
        "DATABASES": {},
        "CHANNEL_LAYERS": layer.channel_layers_setting(),
        "USE_TZ": True,
        # Strawberry's multipart upload parser reads these; keep Django's defaults explicit.
        "FILE_UPLOAD_HANDLERS": [
            "django.core.files.uploadhandler.MemoryFileUploadHandler",
            "django.core.files.uploadhandler.TemporaryFileUploadHandler",
        ],
        "LOGGING_CONFIG": None,  # uvicorn owns logging; Django must not reconfigure it
        # Nothing here signs data; a random key keeps a known constant out of the process.
        "SECRET_KEY": secrets.token_urlsafe(32),
    }
