"""Boot Django as a library: settings built in code, no settings module, no database."""

from __future__ import annotations

import os
import secrets
from typing import Any

import django
from django.conf import settings as django_settings

from .layers import LayerSpec


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
