from __future__ import annotations

import socket
from collections.abc import Iterator
from urllib.parse import urlsplit

import pytest

from tests.support.node import node_with_spec_packages
from tests.support.rabbit_node import RabbitNode
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


@pytest.fixture(scope="session")
def node() -> str:
    """Node with tests/spec's npm packages installed (npm ci on a clean checkout); no Node fails."""
    try:
        return node_with_spec_packages()
    except RuntimeError as exc:
        pytest.fail(str(exc))


@pytest.fixture(scope="module")
def memory_server() -> Iterator[ServerProcess]:
    with ServerProcess(CHAT_APP) as server:
        yield server


@pytest.fixture(scope="module")
def memory_sse_server() -> Iterator[ServerProcess]:
    with ServerProcess(CHAT_APP, "--sse") as server:
        yield server


@pytest.fixture(scope="module")
def amqp_server(amqp_url: str) -> Iterator[ServerProcess]:
    with ServerProcess(CHAT_APP, "--layer", amqp_url) as server:
        yield server


@pytest.fixture(scope="session")
def rabbit_node(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RabbitNode]:
    """A RabbitMQ node of the tests' own (not the shared one on 5672), started once, for
    faults a proxy cannot make: stopped, killed, queues deleted, memory alarms."""
    node = RabbitNode(tmp_path_factory.mktemp("rabbit-node")).start()
    try:
        yield node
    finally:
        node.stop()


@pytest.fixture()
def healthy_node(rabbit_node: RabbitNode) -> RabbitNode:
    """The test node, running and without alarms whatever the previous test did to it."""
    rabbit_node.ensure_healthy()
    return rabbit_node
