"""The shared broker (RabbitMQ on 127.0.0.1:5672) as the tests inspect it."""

from __future__ import annotations

import subprocess


def bound_groups(prefix: str) -> set[str]:
    """Routing keys bound on the broker's groups exchange that start with `prefix`."""
    out = subprocess.run(["rabbitmqctl", "-q", "list_bindings", "source_name", "routing_key"],
                         capture_output=True, text=True, timeout=30, check=True).stdout
    return {line.split("\t")[1] for line in out.splitlines()
            if line.startswith("groups\t") and line.split("\t")[1].startswith(prefix)}
