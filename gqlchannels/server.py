"""Hand the app to uvicorn, which already does sockets, signals, workers and reload."""

from __future__ import annotations

import copy
import logging
import logging.config
import os
import shutil
import signal
import sys
import tempfile
from typing import Any

import uvicorn
from uvicorn.config import LOGGING_CONFIG

from .layers import mask_url
from .metrics import MULTIPROC_ENV
from .settings import Settings
from .ws_server import LeanWebSocketProtocol

APP_FACTORY = "gqlchannels.app:create_app"
JSON_FORMAT = "%(asctime)s %(levelname)s %(name)s %(message)s"

logger = logging.getLogger("gqlchannels")


def log_config(level: str, log_format: str = "text") -> dict[str, Any]:
    """uvicorn's logging setup, plus our own loggers on the same handler; JSON if asked."""
    config = copy.deepcopy(LOGGING_CONFIG)
    uvicorn_level = "DEBUG" if level == "trace" else level.upper()
    # strawberry.execution logs each GraphQL error; it goes through the same handler and format.
    for name in ("gqlchannels", "channels_rabbitmq", "strawberry"):
        config["loggers"][name] = {"handlers": ["default"], "level": uvicorn_level, "propagate": False}
    if log_format == "json":
        # One JSON object per line: uvicorn's access lines carry client, method, path and
        # status as fields of their message; every other event is its message.
        for formatter in config["formatters"].values():
            formatter.clear()
            formatter.update({"()": "pythonjsonlogger.json.JsonFormatter", "fmt": JSON_FORMAT,
                              "rename_fields": {"asctime": "time", "levelname": "level", "name": "logger"}})
    return config


def serve(settings: Settings) -> None:
    """Run the server until it is told to stop (SIGTERM or SIGINT: exit status 0). Blocks."""
    # Workers and the reloader's child are new processes: they rebuild everything from this.
    settings.export_to_environment()
    metrics_dir = _share_metrics_between_workers(settings)
    # uvicorn re-raises the stop signal after its graceful shutdown; a clean stop exits 0.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    logging.config.dictConfig(log_config(settings.log_level, settings.log_format))
    logger.info(
        "serving %s at http://%s:%d%s with %d worker(s), channel layer %s",
        settings.app, settings.host, settings.port, settings.path, settings.workers, mask_url(settings.layer_url),
    )
    try:
        uvicorn.run(
            APP_FACTORY,
            factory=True,
            host=settings.host,
            port=settings.port,
            workers=settings.workers,
            reload=settings.reload,
            reload_dirs=[settings.app_dir] if settings.reload else None,
            log_level=settings.log_level,
            log_config=log_config(settings.log_level, settings.log_format),
            lifespan="on",
            timeout_graceful_shutdown=settings.shutdown_timeout,  # type: ignore[arg-type]
            ws=LeanWebSocketProtocol,
            ws_max_size=settings.max_ws_message_size,
            ws_per_message_deflate=settings.ws_compression,
            ws_ping_interval=settings.ws_ping_interval or None,
            ws_ping_timeout=settings.ws_ping_interval or None,
            proxy_headers=True,
            forwarded_allow_ips=settings.forwarded_allow_ips,
        )
    finally:
        if metrics_dir is not None:
            shutil.rmtree(metrics_dir, ignore_errors=True)


def _share_metrics_between_workers(settings: Settings) -> str | None:
    """With several workers, a directory prometheus-client's multiprocess mode writes to."""
    if settings.workers == 1 or os.environ.get(MULTIPROC_ENV):
        return None
    directory = tempfile.mkdtemp(prefix="gqlchannels-metrics-")
    os.environ[MULTIPROC_ENV] = directory
    return directory
