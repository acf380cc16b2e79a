"""Benchmark gqlchannels side by side with graphql-yoga, Apollo Server and the plain
alternatives, in one run.

    python -m bench                      # full run, about 8 minutes on 2 cores
    python -m bench --quick              # everything small, about 2 minutes
    python -m bench --only fanout        # one phase (repeatable): http, nested, fanout, memory, capacity, hostile, otel

Starts each contender itself, one process each on a free loopback port: gqlchannels on
memory:// and on amqp://, plain strawberry.asgi.GraphQL on uvicorn, Strawberry's Channels
integration wired by hand, graphql-yoga 5 and Apollo Server 5 (Node, installed by `npm ci`
from bench/node/package-lock.json when bench/node/node_modules is missing), the floor, a
raw uvicorn app, and the fan-out floor, a Node server with no GraphQL writing a prepared frame
to each subscriber (the most the load side can read on this machine). Drives them from
separate processes (wrk for HTTP, bench/node/fanout.js for the fan-out, bench/ws_client.py for
idle WebSockets), prints absolute figures and ratios, then a summary and whether each target
is met; a rate to reach that the fan-out floor did not reach is said to be beyond the load side. Server CPU is the user + system time of the
server's process tree over exactly the measured window. Needs wrk, Node 20 with npm, and
RabbitMQ on 127.0.0.1:5672 (guest/guest). Every phase is bounded in time; the exit status is
0 whatever the figures.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import operator
import os
import resource
import select
import shutil
import statistics
import subprocess
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol, TypeVar

import httpx

from bench.harness import (
    APOLLO,
    APOLLO_STANDALONE,
    CONTENDERS,
    FANOUT_FLOOR,
    FLOOR,
    GQL_AMQP,
    GQL_AMQP_TRACED,
    GQL_AMQP_TRACED_1,
    GQL_FULL_ROUTE,
    GQL_MEMORY,
    GQL_TRACED,
    GQL_TRACED_1,
    HANDWRITTEN,
    OTLP_SINK_PORT,
    PLAIN,
    PY,
    ROOT,
    YOGA,
    Server,
    WrkRun,
    check_same_schema,
    describe_machine_and_versions,
    ensure_node_modules,
    node_script,
    post,
    running,
    wrk,
)
from bench.operations import HELLO, NESTED, SEND, SUBSCRIBE, SUBSCRIBE_WITH_VIEWER
from bench.procstat import rss_kb

HOLD_LIMIT = 300  # seconds for a holding client to open, join and report its subscriptions
FANOUT_LIMIT = 300  # seconds for one fan-out run, from the first handshake to the last delivery
# The documents bench/node/fanout.js drives the fan-out with, from the one place they are written.
FANOUT_OPERATIONS = json.dumps({"subscribe": SUBSCRIBE, "subscribe_with_viewer": SUBSCRIBE_WITH_VIEWER, "send": SEND})

HTTP_CONTENDERS = (GQL_MEMORY, GQL_FULL_ROUTE, PLAIN, HANDWRITTEN, YOGA, APOLLO, APOLLO_STANDALONE, FLOOR)
NESTED_CONTENDERS = (GQL_MEMORY, GQL_FULL_ROUTE, PLAIN, YOGA, APOLLO, APOLLO_STANDALONE, FLOOR)
HTTP_RIVALS = (YOGA, APOLLO, APOLLO_STANDALONE, PLAIN)  # gqlchannels' ratios are to these
FANOUT_CONTENDERS = (GQL_MEMORY, GQL_AMQP, YOGA, APOLLO, HANDWRITTEN, FANOUT_FLOOR)
VIEWER_CONTENDERS = (GQL_MEMORY, GQL_AMQP, YOGA, APOLLO)  # the row with a per-subscriber field
FANOUT_RIVALS = (YOGA, APOLLO, HANDWRITTEN)
MEMORY_CONTENDERS = (GQL_MEMORY, GQL_AMQP, YOGA, APOLLO)
CAPACITY_CONTENDERS = (GQL_MEMORY, GQL_AMQP)
# Tracing off (the plain contender) beside on, sampling every trace or 1% of them.
OTEL_HTTP = {GQL_MEMORY: (GQL_TRACED, GQL_TRACED_1)}
OTEL_FANOUT = {GQL_MEMORY: (GQL_TRACED, GQL_TRACED_1), GQL_AMQP: (GQL_AMQP_TRACED, GQL_AMQP_TRACED_1)}


@dataclass(frozen=True)
class Size:
    wrk_seconds: int
    repeats: int  # of each measurement, taking turns between contenders; the median is reported
    subscribers: int
    messages: int
    idle_connections: int
    capacity: tuple[int, int]  # connections, subscriptions on each


QUICK = Size(wrk_seconds=2, repeats=1, subscribers=100, messages=5, idle_connections=200, capacity=(100, 10))
FULL = Size(wrk_seconds=5, repeats=3, subscribers=500, messages=20, idle_connections=2000, capacity=(1000, 10))


class Figures(Protocol):
    @property
    def failed(self) -> bool:
        """The contender did not cope with this load."""

    def value(self, figure: str) -> float | None:
        """None when failed."""


class LoadFailed(Exception):
    """A contender did not cope with the load: a result to report, not a reason to stop."""


AnyFigures = TypeVar("AnyFigures", bound=Figures)


@dataclass(frozen=True)
class HttpFigures:
    runs: list[WrkRun]
    body_bytes: int
    failed = False  # wrk's errors are counted, not fatal

    def value(self, figure: str) -> float | None:
        """The median over runs of a WrkRun attribute."""
        return statistics.median(getattr(run, figure) for run in self.runs)

    @property
    def errors(self) -> str:
        responses, sockets = (sum(run.error_responses for run in self.runs),
                              sum(run.socket_errors for run in self.runs))
        return (f"  {responses} error responses" if responses else "") + (
            f"  {sockets} socket errors" if sockets else "")


@dataclass(frozen=True)
class FanoutFigures:
    runs: list[dict[str, Any]]  # the runs that completed, as bench/node/fanout.js reports them
    failures: list[str]  # why the others did not

    @property
    def failed(self) -> bool:
        return not self.runs

    def value(self, figure: str) -> float | None:
        """The median over the completed runs of a reported figure."""
        return statistics.median(float(run[figure]) for run in self.runs) if self.runs else None

    @property
    def lost(self) -> int:
        return int(sum(run["expected"] - run["delivered"] for run in self.runs))

    @property
    def wrong_viewer(self) -> int:
        return int(sum(run["wrong_viewer"] for run in self.runs))

    @property
    def warm_up_failures(self) -> list[str]:
        return [failure for run in self.runs for failure in run["warm_up_failures"]]


@dataclass(frozen=True)
class MemoryFigures:
    held: int = 0
    rss_mb: float = 0.0
    kb_per_connection: float = 0.0
    failure: str | None = None
    warm_up_failures: tuple[str, ...] = ()  # publishes that failed while the subscriptions joined

    @property
    def failed(self) -> bool:
        return self.failure is not None

    def value(self, figure: str) -> float | None:
        return None if self.failure else float(getattr(self, figure))


@dataclass
class Results:
    http: dict[str, HttpFigures] = field(default_factory=dict)
    nested: dict[str, HttpFigures] = field(default_factory=dict)
    fanout: dict[str, FanoutFigures] = field(default_factory=dict)
    fanout_viewer: dict[str, FanoutFigures] = field(default_factory=dict)
    memory: dict[str, MemoryFigures] = field(default_factory=dict)
    memory_deflate: dict[str, MemoryFigures] = field(default_factory=dict)
    capacity: dict[str, MemoryFigures] = field(default_factory=dict)


# --- shared helpers -------------------------------------------------------------------------

def figure_of(figures: Mapping[str, Figures], name: str, figure: str) -> float | None:
    return figures[name].value(figure) if name in figures else None


def ratio(a: float | None, b: float | None) -> float | None:
    return a / b if a is not None and b else None


def times(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.2f}x"


def number(value: float) -> str:
    return f"{value:,.0f}"


def print_ratios(figures: Mapping[str, Figures], ours: Iterable[str], rivals: Iterable[str],
                 measures: Iterable[tuple[str, str]]) -> None:
    """One line per pair: our figure over theirs for each (label, figure)."""
    for name in ours:
        for rival in rivals:
            if name != rival and name in figures and rival in figures \
                    and not (figures[name].failed or figures[rival].failed):
                print(f"  {name} / {rival}: " + ", ".join(
                    f"{label} {times(ratio(figure_of(figures, name, figure), figure_of(figures, rival, figure)))}"
                    for label, figure in measures))


def _failure_reason(stderr: str) -> str:
    lines = [line for line in stderr.strip().splitlines() if line.strip()]
    return lines[-1] if lines else "no reason given"


def fanout_run(server: Server, size: Size, viewer: bool) -> dict[str, Any]:
    """One fan-out from a separate load process, in Node: a Python one took most of a core at the
    rates measured and capped them. Raises LoadFailed if the contender did not cope."""
    command = node_script("fanout.js", server.ws_url, server.url, "--subscribers", str(size.subscribers),
                          "--messages", str(size.messages), "--server-pid", str(server.pid),
                          *(["--viewer"] if viewer else []))
    try:
        out = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=FANOUT_LIMIT,
                             env={**os.environ, "BENCH_OPERATIONS": FANOUT_OPERATIONS})
    except subprocess.TimeoutExpired:
        raise LoadFailed(f"no result within {FANOUT_LIMIT} s") from None
    if out.returncode != 0:
        raise LoadFailed(_failure_reason(out.stderr))
    return json.loads(out.stdout.strip().splitlines()[-1])


def hold(server: Server, connections: int, per_connection: int, deflate: bool = False) -> MemoryFigures:
    """Open idle subscriptions from a separate process; the server's RSS growth once all are joined."""
    before = rss_kb(server.pid)
    proc = subprocess.Popen([PY, "-m", "bench.ws_client", "hold", server.ws_url, server.url,
                             "--connections", str(connections), "--per-connection", str(per_connection),
                             *(["--deflate"] if deflate else [])],
                            cwd=ROOT, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert proc.stdin is not None and proc.stdout is not None and proc.stderr is not None
    try:
        readable, _, _ = select.select([proc.stdout], [], [], HOLD_LIMIT)
        line = proc.stdout.readline() if readable else ""
        time.sleep(1)  # the last joins settle
        after = rss_kb(server.pid)
    finally:
        proc.stdin.close()
        try:
            proc.wait(60)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
    if not line:
        return MemoryFigures(failure=_failure_reason(proc.stderr.read()) if readable
                             else f"not all subscribed within {HOLD_LIMIT} s")
    report = json.loads(line)
    return MemoryFigures(report["ready"], after / 1024, (after - before) / connections,
                         warm_up_failures=tuple(report["warm_up_failures"]))


def hello_latencies(server: Server, seconds: float) -> list[float]:
    """`{ hello }` one request after another on one connection, for `seconds`: each in ms."""
    latencies = []
    with httpx.Client(timeout=60, headers={"content-type": "application/json"}) as client:
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            started = time.perf_counter()
            response = client.post(server.url, content=HELLO)
            latencies.append((time.perf_counter() - started) * 1000)
            if "errors" in response.json():
                raise SystemExit(f"{{ hello }} failed: {response.text}")
    return latencies


def percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))]


def hello_under_attack(server: Server, seconds: float, clients: int) -> dict[str, list[float]]:
    """`{ hello }` latency on its own connection, alone and while `clients` connections send
    hostile documents."""
    hello_latencies(server, 1)  # warm up
    quiet = hello_latencies(server, seconds)
    attack = subprocess.Popen([PY, "-m", "bench.hostile", "attack", server.url, "--clients", str(clients),
                               "--seconds", str(seconds + 60)], cwd=ROOT, stdout=subprocess.PIPE, text=True,
                              env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert attack.stdout is not None
    try:
        if not attack.stdout.readline():
            raise SystemExit("the hostile client failed")
        attacked = hello_latencies(server, seconds)
    finally:
        attack.terminate()
        attack.wait(30)
    return {"quiet": quiet, "attacked": attacked}


def measure_http(names: tuple[str, ...], body: bytes, size: Size) -> dict[str, HttpFigures]:
    """wrk against each contender in turn, `size.repeats` rounds, once every contender has
    given the same answer."""
    with running(*names) as servers:
        answers = {name: post(server.url, body) for name, server in servers.items()}
        reference = answers[names[0]].json()
        for name, answer in answers.items():
            if answer.status_code != 200 or answer.json() != reference:
                raise SystemExit(f"{name} answers {answer.status_code} {answer.text[:500]!r},"
                                 f" not {names[0]}'s {json.dumps(reference)[:500]!r}")
        for server in servers.values():
            wrk(server, body, 1)  # warm-up: Node's JIT, every contender's caches
        runs: dict[str, list[WrkRun]] = {name: [] for name in names}
        for _ in range(size.repeats):
            for name, server in servers.items():
                runs[name].append(wrk(server, body, size.wrk_seconds))
    return {name: HttpFigures(runs[name], len(answers[name].content)) for name in names}


def print_http(figures: dict[str, HttpFigures], rivals: bool = True) -> None:
    print(f"  {'':36} {'req/s':>8} {'p50 ms':>7} {'p99 ms':>7} {'CPU us/req':>11} {'body B':>7}   runs (req/s)")
    for name, result in figures.items():
        print(f"  {name:36} {result.value('requests_per_s'):8,.0f} {result.value('p50_ms'):7.2f}"
              f" {result.value('p99_ms'):7.2f} {result.value('cpu_us_per_request'):11.0f} {result.body_bytes:7}"
              f"   {', '.join(number(run.requests_per_s) for run in result.runs)}{result.errors}")
    if rivals:
        print_ratios(figures, [GQL_MEMORY, GQL_FULL_ROUTE], (GQL_FULL_ROUTE, *HTTP_RIVALS),
                     [("req/s", "requests_per_s"), ("p99", "p99_ms"), ("CPU per request", "cpu_us_per_request")])


def print_fanout(figures: dict[str, FanoutFigures], rivals: bool = True) -> None:
    print(f"  {'':36} {'deliveries/s':>12} {'p50 ms':>7} {'p99 ms':>7} {'CPU us/delivery':>15} {'lost':>5}"
          f" {'client CPU':>10}   runs (deliveries/s)")
    for name, result in figures.items():
        if result.failed:
            print(f"  {name:36} failed: {result.failures[0]}")
            continue
        notes = f"  {result.wrong_viewer} given another subscriber's viewer" if result.wrong_viewer else ""
        notes += warm_up_note(result.warm_up_failures)
        notes += f"  {len(result.failures)} failed: {result.failures[0]}" if result.failures else ""
        print(f"  {name:36} {result.value('deliveries_per_s'):12,.0f} {result.value('p50_ms'):7.1f}"
              f" {result.value('p99_ms'):7.1f} {result.value('server_cpu_us_per_delivery'):15.0f} {result.lost:5}"
              f" {max(float(run['client_cpu_share']) for run in result.runs):10.0%}"
              f"   {', '.join(number(float(run['deliveries_per_s'])) for run in result.runs)}{notes}")
    if rivals:
        print_ratios(figures, [GQL_MEMORY, GQL_AMQP], FANOUT_RIVALS,
                     [("deliveries/s", "deliveries_per_s"), ("p99", "p99_ms"),
                      ("CPU per delivery", "server_cpu_us_per_delivery")])


def warm_up_note(failures: Iterable[str]) -> str:
    failures = list(failures)
    return f"  ({len(failures)} publishes failed while subscriptions joined: {failures[0]})" if failures else ""


def print_held(name: str, figures: MemoryFigures, per_connection: bool) -> None:
    note = warm_up_note(figures.warm_up_failures)
    if figures.failure:
        print(f"  {name:36} failed: {figures.failure}")
    elif per_connection:
        print(f"  {name:36} {figures.kb_per_connection:6.1f} KB per connection  (RSS {figures.rss_mb:.0f} MB){note}")
    else:
        print(f"  {name:36} {figures.held} held and delivering, RSS {figures.rss_mb:.0f} MB{note}")


def print_memory(figures: dict[str, MemoryFigures]) -> None:
    for name, result in figures.items():
        print_held(name, result, per_connection=True)
    print_ratios(figures, [GQL_MEMORY, GQL_AMQP], [YOGA, APOLLO], [("KB per connection", "kb_per_connection")])


# --- phases: each measures, prints its figures and fills its part of Results ---------------

def phase_http(size: Size, results: Results) -> None:
    print(f"\nHTTP {{ hello }}: wrk -c32, {size.wrk_seconds} s x {size.repeats}, taking turns"
          " (no layer on this path: gqlchannels runs its default, memory://)", flush=True)
    results.http = measure_http(HTTP_CONTENDERS, HELLO, size)
    print_http(results.http)


def phase_nested(size: Size, results: Results) -> None:
    print(f"\nHTTP nested query (20 books x 5 fields and an author, a fragment, variables): wrk -c32,"
          f" {size.wrk_seconds} s x {size.repeats}, taking turns", flush=True)
    results.nested = measure_http(NESTED_CONTENDERS, NESTED, size)
    print_http(results.nested)


def phase_fanout(size: Size, results: Results) -> None:
    print(f"\nFan-out: {size.subscribers} subscribers x {size.messages} messages, x {size.repeats}, taking turns;"
          " server CPU leaves RabbitMQ's out; client CPU is the load process's share of one core"
          " (near 100%, the client is the limit)", flush=True)
    rows = [(name, False) for name in FANOUT_CONTENDERS] + [(name, True) for name in VIEWER_CONTENDERS]
    completed: dict[tuple[str, bool], list[dict[str, Any]]] = {row: [] for row in rows}
    failures: dict[tuple[str, bool], list[str]] = {row: [] for row in rows}
    with running(*FANOUT_CONTENDERS) as servers:
        for _ in range(size.repeats):
            for name, viewer in rows:
                try:
                    completed[name, viewer].append(fanout_run(servers[name], size, viewer))
                except LoadFailed as failure:
                    failures[name, viewer].append(str(failure))
    results.fanout = {name: FanoutFigures(completed[name, False], failures[name, False])
                      for name in FANOUT_CONTENDERS}
    results.fanout_viewer = {name: FanoutFigures(completed[name, True], failures[name, True])
                             for name in VIEWER_CONTENDERS}
    print("  plain fields, as the chat example selects: joinChatRooms { id message }")
    print_fanout(results.fanout)
    print("  with a per-subscriber field: joinChatRooms { id message viewer }")
    print_fanout(results.fanout_viewer)


def phase_memory(size: Size, results: Results) -> None:
    for deflate, figures in ((False, results.memory), (True, results.memory_deflate)):
        clients = " from clients offering permessage-deflate, as browsers do" if deflate else ""
        print(f"\nMemory: {size.idle_connections} idle subscribed WebSockets{clients}", flush=True)
        with running(*MEMORY_CONTENDERS) as servers:  # fresh ones: freed memory is reused, not returned
            for name, server in servers.items():
                figures[name] = hold(server, size.idle_connections, 1, deflate=deflate)
        print_memory(figures)


def phase_capacity(size: Size, results: Results) -> None:
    connections, per_connection = size.capacity
    print(f"\nCapacity: {connections * per_connection} subscriptions ({connections} connections x {per_connection})"
          " in one process", flush=True)
    with running(*CAPACITY_CONTENDERS) as servers:
        for name, server in servers.items():
            results.capacity[name] = hold(server, connections, per_connection)
            print_held(name, results.capacity[name], per_connection=False)


def phase_hostile(size: Size, results: Results) -> None:
    from bench.hostile import measure_validation

    repeats = max(size.repeats, 5)  # a few seconds in all; a single run is mostly noise
    print(f"\nHostile documents within the default limits: CPU time to parse and validate, best of {repeats}",
          flush=True)
    figures = measure_validation(repeats)
    for name, shape in figures.items():
        print(f"  {name:36} {shape['bytes']:>9} B {shape['tokens']:>5} tokens  parse {shape['parse_ms']:6.1f} ms"
              f"  validate {shape['validate_ms']:6.1f} ms  {str(shape['outcome'])[:60]}")
    worst = max(figures, key=lambda name: figures[name]["validate_ms"])  # type: ignore[arg-type,return-value]
    print(f"  worst validation: {figures[worst]['validate_ms']:.1f} ms ({worst})")
    clients, seconds = 4, size.wrk_seconds
    print(f"\n{{ hello }} latency on its own connection, {seconds} s alone, then {seconds} s while {clients} clients "
          "send the documents above", flush=True)
    with running(GQL_MEMORY) as servers:
        latencies = hello_under_attack(servers[GQL_MEMORY], seconds, clients)
    for label, values in latencies.items():
        print(f"  {label:10} p50 {percentile(values, 0.5):7.1f} ms  p99 {percentile(values, 0.99):7.1f} ms"
              f"  max {max(values):7.1f} ms  ({len(values)} requests)")


@contextlib.contextmanager
def otlp_sink() -> Iterator[None]:
    """bench/otlp_sink.py on OTLP_SINK_PORT, where the traced contenders export."""
    sink = subprocess.Popen([PY, "-m", "bench.otlp_sink", str(OTLP_SINK_PORT)], cwd=ROOT,
                            env={**os.environ, "PYTHONPATH": str(ROOT)})
    try:
        deadline = time.monotonic() + 10
        while True:
            try:
                httpx.post(f"http://127.0.0.1:{OTLP_SINK_PORT}/v1/traces", content=b"", timeout=1)
                break
            except httpx.HTTPError:
                if time.monotonic() > deadline:
                    raise SystemExit("the OTLP sink did not start") from None
                time.sleep(0.1)
        yield
    finally:
        sink.terminate()
        sink.wait(10)


def print_traced_ratios(figures: Mapping[str, Figures], pairs: Mapping[str, tuple[str, ...]],
                        measures: Iterable[tuple[str, str]]) -> None:
    for off, traced in pairs.items():
        for name in traced:
            if name in figures and off in figures and not (figures[name].failed or figures[off].failed):
                print(f"  {name} / off: " + ", ".join(
                    f"{label} {times(ratio(figure_of(figures, name, figure), figure_of(figures, off, figure)))}"
                    for label, figure in measures))


def phase_otel(size: Size, results: Results) -> None:
    http_names = tuple(name for off, traced in OTEL_HTTP.items() for name in (off, *traced))
    fanout_names = tuple(name for off, traced in OTEL_FANOUT.items() for name in (off, *traced))
    with otlp_sink():
        print(f"\nTracing: {{ hello }} over HTTP, wrk -c32, {size.wrk_seconds} s x {size.repeats}, taking turns;"
              " tracing off beside --otel exporting over OTLP/HTTP (to a sink that drops the spans), every trace"
              " sampled or 1% (OTEL_TRACES_SAMPLER=parentbased_traceidratio)", flush=True)
        http = measure_http(http_names, HELLO, size)
        print_http(http, rivals=False)
        print_traced_ratios(http, OTEL_HTTP, [("req/s", "requests_per_s"), ("p99", "p99_ms"),
                                              ("CPU per request", "cpu_us_per_request")])
        print(f"\nTracing: fan-out, {size.subscribers} subscribers x {size.messages} messages, x {size.repeats},"
              " taking turns (each delivery a CONSUMER span when its trace is sampled)", flush=True)
        completed: dict[str, list[dict[str, Any]]] = {name: [] for name in fanout_names}
        failures: dict[str, list[str]] = {name: [] for name in fanout_names}
        with running(*fanout_names) as servers:
            for _ in range(size.repeats):
                for name in fanout_names:
                    try:
                        completed[name].append(fanout_run(servers[name], size, False))
                    except LoadFailed as failure:
                        failures[name].append(str(failure))
        fanout = {name: FanoutFigures(completed[name], failures[name]) for name in fanout_names}
        print_fanout(fanout, rivals=False)
        print_traced_ratios(fanout, OTEL_FANOUT, [("deliveries/s", "deliveries_per_s"), ("p99", "p99_ms"),
                                                  ("CPU per delivery", "server_cpu_us_per_delivery")])


PHASES: dict[str, Callable[[Size, Results], None]] = {
    "http": phase_http,
    "nested": phase_nested,
    "fanout": phase_fanout,
    "memory": phase_memory,
    "capacity": phase_capacity,
    "hostile": phase_hostile,
    "otel": phase_otel,
}


# --- summary and targets --------------------------------------------------------------------

def print_table(header: list[str], rows: list[list[str]]) -> None:
    print()
    print("| " + " | ".join(header) + " |")
    print("|" + "---|" * len(header))
    for row in rows:
        print("| " + " | ".join(row) + " |")


def _http_cell(figures: dict[str, HttpFigures], name: str, figure: str, unit: str) -> str:
    value = figure_of(figures, name, figure)
    return "" if value is None else f"{value:,.1f} ms" if unit == "ms" else f"{value:,.0f}{unit}"


def print_http_summary(results: Results) -> None:
    """In the shape of the HTTP table of the targets: absolute figures, gqlchannels' with its ratios."""
    short = {YOGA: "yoga", APOLLO: "Apollo", APOLLO_STANDALONE: "Apollo standalone", PLAIN: "plain"}
    rows = []
    for label, figures, figure, unit in (
        ("`{ hello }` requests/s", results.http, "requests_per_s", ""),
        ("`{ hello }` p99", results.http, "p99_ms", "ms"),
        ("`{ hello }` server CPU per request", results.http, "cpu_us_per_request", " us"),
        ("nested query requests/s", results.nested, "requests_per_s", ""),
        ("nested query p99", results.nested, "p99_ms", "ms"),
        ("nested query server CPU per request", results.nested, "cpu_us_per_request", " us"),
    ):
        if figures:
            ours = figure_of(figures, GQL_MEMORY, figure)
            ratios = ", ".join(f"{times(ratio(ours, figure_of(figures, rival, figure)))} {short[rival]}"
                               for rival in HTTP_RIVALS if rival in figures)
            rows.append([label, f"{_http_cell(figures, GQL_MEMORY, figure, unit)} ({ratios})",
                         *(_http_cell(figures, name, figure, unit) for name in (*HTTP_RIVALS, FLOOR))])
    if rows:
        print_table(["one process each, same run, wrk -c32", "gqlchannels", "graphql-yoga 5",
                     "Apollo Server 5 (express)", "Apollo Server 5 standalone", "plain strawberry", "floor"], rows)


def _cells(figures: Mapping[str, AnyFigures], names: Iterable[str], render: Callable[[AnyFigures], str]) -> list[str]:
    """One cell per contender: blank when not measured, "failed" when it did not cope."""
    return ["" if name not in figures else "failed" if figures[name].failed else render(figures[name])
            for name in names]


def _to_yoga(figures: Mapping[str, Figures], figure: str, unit: str) -> Callable[[Figures], str]:
    yoga = figure_of(figures, YOGA, figure)

    def render(result: Figures) -> str:
        value = result.value(figure) or 0.0
        return f"{value / yoga:.2f} ({number(value)}{unit})" if yoga else f"{number(value)}{unit}"

    return render


def print_fanout_summary(results: Results) -> None:
    """In the shape of the fan-out table of the targets: ratios to graphql-yoga, absolute figures beside."""
    names = (GQL_MEMORY, GQL_AMQP, YOGA, APOLLO, HANDWRITTEN, FANOUT_FLOOR)
    rows = []
    for prefix, fanout in (("", results.fanout), ("with a per-subscriber field: ", results.fanout_viewer)):
        if fanout:
            rows += [
                [prefix + "deliveries/s, as a ratio to yoga",
                 *_cells(fanout, names, _to_yoga(fanout, "deliveries_per_s", "/s"))],
                [prefix + "p50 / p99",
                 *_cells(fanout, names, lambda r: f"{r.value('p50_ms'):.0f} / {r.value('p99_ms'):.0f} ms")],
                [prefix + "server CPU per delivery, as a ratio to yoga",
                 *_cells(fanout, names, _to_yoga(fanout, "server_cpu_us_per_delivery", " us"))],
                [prefix + "lost deliveries", *_cells(fanout, names, lambda r: str(r.lost))],
            ]
    for label, memory in (("KB per idle subscribed WebSocket", results.memory),
                          ("the same, clients offering permessage-deflate", results.memory_deflate)):
        if memory:
            rows.append([f"{label} ({max(m.held for m in memory.values()):,})",
                         *_cells(memory, names, lambda m: f"{m.kb_per_connection:.1f}")])
    if results.capacity:
        rows.append(["subscriptions held by one process",
                     *_cells(results.capacity, names, lambda m: f"{m.held:,} ({m.rss_mb:.0f} MB RSS)")])
    if rows:
        print_table(["one process each, same run", *names], rows)


@dataclass(frozen=True)
class Target:
    text: str
    measure: str  # the Results attribute holding the figures
    figure: str
    ours: str
    rival: str
    compare: Callable[[float, float], bool]  # applied to (ours / rival, goal)
    goal: float

    def outcome(self, results: Results) -> str | None:
        """The ratio and whether it meets the goal; None when this run did not measure it."""
        figures = getattr(results, self.measure)
        if self.ours not in figures or self.rival not in figures:
            return None
        if figures[self.ours].failed:
            return "not met (gqlchannels failed under this load)"
        if figures[self.rival].failed:
            return f"met ({self.rival} failed under this load)"
        value = ratio(figures[self.ours].value(self.figure), figures[self.rival].value(self.figure))
        return (f"{times(value)}  {'met' if value is not None and self.compare(value, self.goal) else 'not met'}"
                + self._beyond_the_floor(figures))

    def _beyond_the_floor(self, figures: Mapping[str, Any]) -> str:
        """For a rate to reach: whether the fan-out floor, a server doing no GraphQL, reached it."""
        if self.figure != "deliveries_per_s" or FANOUT_FLOOR not in figures or figures[FANOUT_FLOOR].failed:
            return ""
        needed = self.goal * (figures[self.rival].value(self.figure) or 0.0)
        floor = figures[FANOUT_FLOOR].value(self.figure) or 0.0
        return (f" (needs {number(needed)}/s; the fan-out floor reached {number(floor)}/s"
                + (": beyond what this machine's load side can read)" if floor < needed else ")"))


def _fanout_targets(layer: str, goal: float) -> list[Target]:
    return [
        *(Target(f"fan-out {layer} deliveries/s at least {goal:g}x {rival}'s", "fanout", "deliveries_per_s",
                 layer, rival, operator.ge, goal) for rival in (YOGA, APOLLO)),
        *(Target(f"fan-out {layer} p99 lower than {rival}'s", "fanout", "p99_ms", layer, rival, operator.lt, 1.0)
          for rival in (YOGA, APOLLO)),
        Target(f"{layer} memory per idle subscribed WebSocket no more than {YOGA}'s", "memory", "kb_per_connection",
               layer, YOGA, operator.le, 1.0),
    ]


TARGETS = [
    *_fanout_targets(GQL_MEMORY, 2.0),
    *_fanout_targets(GQL_AMQP, 1.5),
    Target("`{ hello }` requests/s at least graphql-yoga's", "http", "requests_per_s", GQL_MEMORY, YOGA,
           operator.ge, 1.0),
    *(Target(f"`{{ hello }}` server CPU per request at most 1.5x {rival}'s", "http", "cpu_us_per_request",
             GQL_MEMORY, rival, operator.le, 1.5) for rival in (APOLLO, APOLLO_STANDALONE)),
    Target("nested query requests/s at least 1.5x plain strawberry.asgi.GraphQL's", "nested", "requests_per_s",
           GQL_MEMORY, PLAIN, operator.ge, 1.5),
    Target("`{ hello }` p99 at 32 connections lower than graphql-yoga's", "http", "p99_ms", GQL_MEMORY, YOGA,
           operator.lt, 1.0),
]


def print_targets(results: Results) -> None:
    measured = [(target, outcome) for target in TARGETS if (outcome := target.outcome(results)) is not None]
    if not measured:
        return
    print("\nTargets (gqlchannels' figure over the other's):")
    for target, outcome in measured:
        print(f"  {target.text}: {outcome}")
    if len(measured) < len(TARGETS):
        print(f"  ({len(TARGETS) - len(measured)} more need phases or contenders this run did not measure)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="everything small: a smoke run of a minute or two")
    parser.add_argument("--only", action="append", choices=list(PHASES), metavar="PHASE",
                        help=f"run only this phase (repeatable): {', '.join(PHASES)}")
    args = parser.parse_args()
    if shutil.which("wrk") is None:
        raise SystemExit("wrk is needed: apt-get install wrk")
    _, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))  # contenders inherit it: thousands of sockets
    ensure_node_modules()
    check_same_schema()
    size = QUICK if args.quick else FULL
    started = time.monotonic()
    print("python -m bench" + (" --quick" if args.quick else "") + "".join(f" --only {p}" for p in args.only or ()))
    for line in describe_machine_and_versions():
        print(f"  {line}")
    for contender in CONTENDERS.values():
        print(f"  {contender.name}: {contender.about}")
    results = Results()
    for phase in dict.fromkeys(args.only or PHASES):
        began = time.monotonic()
        PHASES[phase](size, results)
        print(f"  ({phase}: {time.monotonic() - began:.0f} s)", flush=True)
    if any((results.http, results.nested, results.fanout, results.memory, results.capacity)):
        print("\nSummary (medians)")
        print_http_summary(results)
        print_fanout_summary(results)
    print_targets(results)
    load = ", ".join(f"{value:.2f}" for value in os.getloadavg())
    print(f"\nDone in {time.monotonic() - started:.0f} s; load average at the end {load}")


if __name__ == "__main__":
    main()
