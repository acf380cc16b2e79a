"""The chat example plus `worker`, the id of the process that runs the operation, and
`hold`, which keeps that process's event loop busy (to steer new connections to another)."""

from __future__ import annotations

import os
import time
from pathlib import Path

import strawberry

from gqlchannels.examples import chat


@strawberry.type
class Query(chat.Query):
    @strawberry.field
    def worker(self) -> int:
        return os.getpid()

    @strawberry.field
    def hold(self, seconds: float, marker: str) -> int:
        """Block this worker's event loop for `seconds` (a sync resolver runs on it), having
        first created the file `marker`, so a test knows the worker is busy from then on."""
        Path(marker).touch()
        time.sleep(seconds)
        return os.getpid()


schema = strawberry.Schema(query=Query, mutation=chat.Mutation, subscription=chat.Subscription)
