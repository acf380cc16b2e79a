"""Hand the app to uvicorn, which already does sockets, signals, workers and reload.

With several workers, uvicorn's supervisor lets go of the listening socket the moment it is
told to stop, and forgets a dead worker's shared state (readiness, live gauges) when it
replaces it (gqlchannels.overrides.uvicorn_server).
"""

from __future__ import annotations

import logging
import logging.config
import os
import shutil
import signal
import sys
import tempfile
from collections.abc import Sequence

from .. import overrides
from ..config.layer_url import mask_url
from ..config.logs import log_config
from ..config.settings import Settings
from ..metrics import MULTIPROC_ENV, worker_exited
from ..overrides import uvicorn_server, uvicorn_websocket
from .connection_guard import uvicorn_http_options
from .readiness import WORKERS_DIR_ENV, forget_worker

APP_FACTORY = "gqlchannels.asgi.app:create_app"

logger = logging.getLogger("gqlchannels")


def serve(settings: Settings, notes: Sequence[str] = ()) -> None:
    """Run the server until it is told to stop (SIGTERM or SIGINT: exit status 0). Blocks.
    `notes`: warnings from the command line's checks, logged once logging is set up."""
    # Workers and the reloader's child are new processes: they rebuild everything from this.
    settings.export_to_environment()
    workers_dir = _share_directory_between_workers(settings)
    # uvicorn re-raises the stop signal after its graceful shutdown; a clean stop exits 0.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    logging.config.dictConfig(log_config(settings.log_level, settings.log_format))
    overrides.configure(fast_paths=settings.fast_paths)
    overrides.log_startup()
    logger.info(
        "serving %s at http://%s:%d%s with %d worker(s), channel layer %s",
        settings.app, settings.host, settings.port, settings.path, settings.workers, mask_url(settings.layer_url),
    )
    for note in notes:
        logger.warning("%s", note)
    options = dict(
        factory=True,
        host=settings.host,
        port=settings.port,
        workers=settings.workers,
        reload=settings.reload,
        reload_dirs=[settings.app_dir] if settings.reload else None,
        log_level=settings.log_level,
        log_config=log_config(settings.log_level, settings.log_format),
        lifespan="on",
        timeout_graceful_shutdown=settings.shutdown_timeout,
        **uvicorn_http_options(settings.connection_limits),
        ws=uvicorn_websocket.protocol(),
        ws_max_size=settings.max_ws_message_size,
        ws_per_message_deflate=settings.ws_compression,
        ws_ping_interval=settings.ws_ping_interval or None,
        ws_ping_timeout=settings.ws_ping_interval or None,
        proxy_headers=True,
        forwarded_allow_ips=settings.forwarded_allow_ips,
    )

    def forget(pid: int) -> None:  # a dead worker's readiness entry and live gauges
        if workers_dir is not None:
            forget_worker(workers_dir, pid)
        worker_exited(pid)

    try:
        uvicorn_server.run(APP_FACTORY, options, on_worker_replaced=forget)
    finally:
        if workers_dir is not None:
            shutil.rmtree(workers_dir, ignore_errors=True)

def _share_directory_between_workers(settings: Settings) -> str | None:
    """With several workers, a fresh directory for what they share: readiness entries and,
    unless the environment names its own, prometheus-client's multiprocess files."""
    if settings.workers == 1:
        return None
    directory = tempfile.mkdtemp(prefix="gqlchannels-workers-")
    os.environ[WORKERS_DIR_ENV] = directory
    os.environ.setdefault(MULTIPROC_ENV, directory)
    return directory
