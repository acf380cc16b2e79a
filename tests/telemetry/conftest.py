"""Tracing in this test process: one SDK provider exporting to memory (OpenTelemetry allows
one global provider per process), and gqlchannels' tracing switch put back after each test."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from opentelemetry import trace
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from gqlchannels import telemetry

_EXPORTER = InMemorySpanExporter()


def _provider() -> None:
    if isinstance(trace.get_tracer_provider(), trace.ProxyTracerProvider):
        provider = TracerProvider()
        provider.add_span_processor(SimpleSpanProcessor(_EXPORTER))
        trace.set_tracer_provider(provider)


@pytest.fixture
def spans() -> Iterator[InMemorySpanExporter]:
    """The spans finished during the test; tracing as a server that was never told about it."""
    _provider()
    _EXPORTER.clear()
    saved = (telemetry.TRACING.on, telemetry.TRACING.decided, telemetry.TRACING.otel)
    try:
        yield _EXPORTER
    finally:
        telemetry.TRACING.on, telemetry.TRACING.decided, telemetry.TRACING.otel = saved
        _EXPORTER.clear()
