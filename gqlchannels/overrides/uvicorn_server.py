"""uvicorn's process handling, stopping at once and forgetting dead workers (a fix).

- `run(app, options, on_worker_replaced)` is what `uvicorn.run` does (the reloader,
  the worker supervisor, or one server), with `Supervisor` for several workers: on SIGTERM
  or SIGINT it closes its own copy of the listening socket and relays SIGTERM to every worker
  at once. uvicorn relays the signal at its next half-second tick and keeps its copy open
  until the last worker has exited: the kernel then goes on queueing new connections that no
  worker accepts any more, until they are reset at exit. When it replaces a worker that died
  (a crash, kill -9, out of memory), it calls `on_worker_replaced(pid)`, so that the server
  forgets that worker's shared state (readiness, live gauges).
- `uvicorn_server_for(handler)` finds the uvicorn server behind a signal handler, and
  `stop_listening(server)` closes its listening sockets, so that a worker told to stop
  refuses new connections at once rather than queueing them until its shutdown is done.

These use uvicorn's supervisor internals (its process list, signal queue and health check
loop), how uvicorn installs its signal handlers, and its servers' `servers` attribute. With
another uvicorn, `uvicorn.run` serves as it is, and a worker stops listening only when
uvicorn's own shutdown gets to it.
"""

from __future__ import annotations

import os
import signal
import sys
from collections.abc import Callable
from typing import Any

import uvicorn
from uvicorn.config import STARTUP_FAILURE
from uvicorn.supervisors import ChangeReload, Multiprocess

from . import Kind, override

GATE = override(
    "uvicorn-worker-lifecycle", Kind.FIX, {"uvicorn": ">=0.54,<0.56"},
    stock="uvicorn.run (the listening socket stays open until every worker has exited)",
)


class Supervisor(Multiprocess):
    """uvicorn's supervisor of worker processes: stops at once, forgets dead workers."""

    def __init__(self, config: uvicorn.Config, sockets: list[Any],
                 on_worker_replaced: Callable[[int], None]) -> None:
        super().__init__(config, sockets)
        self.on_worker_replaced = on_worker_replaced
        self._stopping = False
        for signum in (signal.SIGTERM, signal.SIGINT):
            signal.signal(signum, self._stop_at_once)

    def _stop_at_once(self, signum: int, frame: Any) -> None:
        # Only what is safe in a signal handler: close file descriptors, send signals, and
        # queue the signal for uvicorn's main loop, which then terminates and joins workers.
        if not self._stopping:
            self._stopping = True
            for sock in self.sockets:
                sock.close()
            for process in self.processes:
                if process.pid is not None:
                    try:
                        os.kill(process.pid, signal.SIGTERM)
                    except ProcessLookupError:
                        pass
        self.signal_queue.append(signum)

    def keep_subprocess_alive(self) -> None:
        if self._stopping:
            return  # the listening socket is closed: a new worker could not serve
        before = {process.pid for process in self.processes}
        super().keep_subprocess_alive()
        for pid in before - {process.pid for process in self.processes}:
            if pid is not None:
                self.on_worker_replaced(pid)


def run(app: str, options: dict[str, Any], on_worker_replaced: Callable[[int], None]) -> None:
    """Serve until told to stop: `uvicorn.run(app, **options)`, with the Supervisor for
    several workers when the gate is active."""
    if not GATE.active:
        uvicorn.run(app, **options)
        return
    config = uvicorn.Config(app, **options)
    try:
        if config.should_reload:
            ChangeReload(config, target=uvicorn.Server(config).run, sockets=[config.bind_socket()]).run()
        elif config.workers > 1:
            Supervisor(config, sockets=[config.bind_socket()], on_worker_replaced=on_worker_replaced).run()
        else:
            server = uvicorn.Server(config)
            server.run()
            if not server.started:
                sys.exit(STARTUP_FAILURE)
    except KeyboardInterrupt:
        pass


def uvicorn_server_for(handler: Any) -> Any | None:
    """The uvicorn server whose method `handler` is, if it is one (uvicorn installs its
    `handle_exit` as the handler of SIGTERM and SIGINT while it serves)."""
    server = getattr(handler, "__self__", None)
    return server if GATE.active and isinstance(server, uvicorn.Server) else None


def stop_listening(server: Any) -> None:
    """Close the server's listening sockets: new connections are refused from now on."""
    for listener in getattr(server, "servers", ()):
        listener.close()
