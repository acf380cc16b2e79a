"""Hand the app to uvicorn, which already does sockets, signals, workers and reload."""

from __future__ import annotations

import copy
from typing import Any

import uvicorn
from uvicorn.config import LOGGING_CONFIG

from .settings import Settings

APP_FACTORY = "gqlchannels.app:create_app"


def log_config(level: str) -> dict[str, Any]:
    """uvicorn's logging setup, plus our own loggers on the same handler."""
    config = copy.deepcopy(LOGGING_CONFIG)
    uvicorn_level = "DEBUG" if level == "trace" else level.upper()
    for name in ("gqlchannels", "channels_rabbitmq"):
        config["loggers"][name] = {"handlers": ["default"], "level": uvicorn_level, "propagate": False}
    return config


def serve(settings: Settings) -> None:
    """Run the server until it is told to stop. Blocks."""
    # Workers and the reloader's child are new processes: they rebuild everything from this.
    settings.export_to_environment()
    uvicorn.run(
        APP_FACTORY,
        factory=True,
        host=settings.host,
        port=settings.port,
        workers=settings.workers,
        reload=settings.reload,
        reload_dirs=[settings.app_dir] if settings.reload else None,
        log_level=settings.log_level,
        log_config=log_config(settings.log_level),
        lifespan="on",
    )
