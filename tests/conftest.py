from __future__ import annotations

import socket
from collections.abc import Iterator
from urllib.parse import urlsplit

import pytest

from tests.support.server import AMQP_URL, CHAT_APP, ServerProcess


@pytest.fixture(scope="session")
def amqp_url() -> str:
    """The broker URL; the broker must answer: a missing broker fails, it does not skip."""
    parts = urlsplit(AMQP_URL)
    try:
        socket.create_connection((parts.hostname, parts.port or 5672), timeout=3).close()
    except OSError as exc:
        pytest.fail(f"RabbitMQ is not reachable at {parts.hostname}:{parts.port or 5672} ({exc}); "
                    "start it (rabbitmq-server -detached) or set GQLCHANNELS_TEST_AMQP_URL")
    return AMQP_URL


@pytest.fixture(scope="module")
def memory_server() -> Iterator[ServerProcess]:
    with ServerProcess(CHAT_APP) as server:
        yield server


@pytest.fixture(scope="module")
def amqp_server(amqp_url: str) -> Iterator[ServerProcess]:
    with ServerProcess(CHAT_APP, "--layer", amqp_url) as server:
        yield server
