"""What the workers of one server tell each other: whether each of them can deliver.

A mutation answered by one worker must reach subscribers on every worker, so one worker
that cannot deliver (its broker connection is down or being rebuilt, it is starting, it is
shutting down) breaks that promise for the whole server: /readyz on every worker answers
503 until it can again. Each worker writes its own state to a small file in a directory
that `serve` shares between its workers, once per change of state (an atomic rename), and
/readyz reads its siblings' files. The supervisor forgets a dead worker (its file and its
metrics) when it replaces it; a file whose process is gone is ignored in the meantime.
"""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path

logger = logging.getLogger("gqlchannels")

WORKERS_DIR_ENV = "GQLCHANNELS_INTERNAL_WORKERS_DIR"
_PREFIX, _SUFFIX = "ready-", ".json"
_UNSET = object()


class ReadinessBoard:
    """This worker's entry on the board, and what the other workers posted."""

    def __init__(self, directory: str | Path, pid: int | None = None) -> None:
        self.directory = Path(directory)
        self.pid = pid or os.getpid()
        self.path = self.directory / f"{_PREFIX}{self.pid}{_SUFFIX}"
        self._posted: object = _UNSET

    @classmethod
    def from_environment(cls) -> ReadinessBoard | None:
        directory = os.environ.get(WORKERS_DIR_ENV)
        return cls(directory) if directory else None

    def post(self, reason: str | None) -> None:
        """Publish why this worker is not ready (None: ready), if that changed."""
        if reason == self._posted:
            return
        temporary = self.path.with_suffix(".tmp")
        try:
            temporary.write_text(json.dumps({"reason": reason}))
            os.replace(temporary, self.path)
        except OSError as exc:  # the server is going away with its directory; never break the caller
            logger.debug("could not post this worker's readiness to %s: %s", self.directory, exc)
            return
        self._posted = reason

    def sibling_not_ready(self) -> str | None:
        """Why a live sibling is not ready, or None when none is known to be unready."""
        try:
            entries = list(os.scandir(self.directory))
        except FileNotFoundError:
            return None
        for entry in sorted(entries, key=lambda e: e.name):
            pid = _pid_of(entry.name)
            if pid is None or pid == self.pid or not _alive(pid):
                continue
            try:
                reason = json.loads(Path(entry.path).read_text()).get("reason")
            except (OSError, ValueError, AttributeError):
                continue  # being replaced, or gone with its worker
            if reason:
                return f"worker {pid}: {reason}"
        return None

    def leave(self) -> None:
        forget_worker(self.directory, self.pid)


def forget_worker(directory: str | Path, pid: int) -> None:
    """Remove a worker's entry (it exited, or died and was replaced)."""
    try:
        os.remove(Path(directory) / f"{_PREFIX}{pid}{_SUFFIX}")
    except FileNotFoundError:
        pass


def _pid_of(name: str) -> int | None:
    if not (name.startswith(_PREFIX) and name.endswith(_SUFFIX)):
        return None
    digits = name[len(_PREFIX):-len(_SUFFIX)]
    return int(digits) if digits.isdigit() else None


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's process: alive
        return True
    return True
