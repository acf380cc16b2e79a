"""What every phase of the bench shares: the contenders, starting one, driving HTTP with wrk,
and the versions that make one run's figures comparable with another's."""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import platform
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field, replace
from importlib import metadata
from pathlib import Path
from typing import IO

import httpx
from graphql import build_schema, lexicographic_sort_schema, print_schema

from bench.operations import HELLO
from bench.procstat import cpu_seconds

ROOT = Path(__file__).resolve().parents[1]
NODE_DIR = ROOT / "bench" / "node"
AMQP = "amqp://guest:guest@127.0.0.1:5672/"
PY = sys.executable
START_LIMIT = 30.0  # seconds a contender may take to answer its first query

GQL_MEMORY = "gqlchannels memory://"
GQL_AMQP = "gqlchannels amqp://"
GQL_FULL_ROUTE = "gqlchannels full HTTP route"
PLAIN = "plain strawberry"
HANDWRITTEN = "strawberry channels (hand-written)"
YOGA = "graphql-yoga"
APOLLO = "Apollo Server"
APOLLO_STANDALONE = "Apollo Server standalone"
FLOOR = "floor"
FANOUT_FLOOR = "fan-out floor"
# Tracing on (the otel phase), exporting to bench/otlp_sink.py on OTLP_SINK_PORT, sampling all
# requests or 1% of them (parentbased_traceidratio: a root span decides for its trace).
GQL_TRACED = "gqlchannels memory:// traced 100%"
GQL_TRACED_1 = "gqlchannels memory:// traced 1%"
GQL_AMQP_TRACED = "gqlchannels amqp:// traced 100%"
GQL_AMQP_TRACED_1 = "gqlchannels amqp:// traced 1%"

PYTHON_PACKAGES = ("gqlchannels", "strawberry-graphql", "graphql-core", "django", "channels", "channels-rabbitmq",
                   "uvicorn", "uvloop", "httptools", "websockets", "orjson", "aiormq")
NODE_PACKAGES = ("graphql-yoga", "@apollo/server", "@as-integrations/express5", "express", "graphql", "graphql-ws",
                 "ws", "graphql-subscriptions", "@graphql-tools/schema")


@dataclass(frozen=True)
class Contender:
    name: str
    command: tuple[str, ...]  # the port follows as `--port N`
    env: Mapping[str, str] = field(default_factory=dict)
    about: str = ""


def _gqlchannels(layer: str) -> tuple[str, ...]:
    return (PY, "-m", "gqlchannels", "serve", "bench.contenders.schemas:ours", "--layer", layer,
            "--log-level", "warning", "--no-graphql-ide")


def _uvicorn(target: str) -> tuple[str, ...]:
    return (PY, "-m", "uvicorn", target, "--log-level", "warning", "--no-access-log", "--lifespan", "off")


def node_script(script: str, *extra: str) -> tuple[str, ...]:
    """The command running bench/node/<script> with `extra` arguments."""
    return (shutil.which("node") or "node", str(NODE_DIR / script), *extra)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


_NODE_ENV = {"NODE_ENV": "production"}  # as deployed
OTLP_SINK_PORT = free_port()


def _traced(ratio: str) -> dict[str, str]:
    return {"OTEL_EXPORTER_OTLP_ENDPOINT": f"http://127.0.0.1:{OTLP_SINK_PORT}", "OTEL_SERVICE_NAME": "bench",
            "OTEL_TRACES_SAMPLER": "parentbased_traceidratio", "OTEL_TRACES_SAMPLER_ARG": ratio}


CONTENDERS: dict[str, Contender] = {contender.name: contender for contender in (
    Contender(GQL_MEMORY, _gqlchannels("memory://"), about="gqlchannels serve, its default in-process layer"),
    Contender(GQL_AMQP, _gqlchannels(AMQP), about="gqlchannels serve --layer amqp:// (RabbitMQ on loopback)"),
    Contender(GQL_FULL_ROUTE, _gqlchannels("memory://"),
              {"GQLCHANNELS_OVERRIDES_OFF": "strawberry-lean-http"},
              about="gqlchannels serve without its lean HTTP handler (the middleware, consumer and view)"),
    Contender(PLAIN, _uvicorn("bench.contenders.plain_strawberry:app"),
              about="strawberry.asgi.GraphQL on uvicorn (queries only)"),
    Contender(HANDWRITTEN, _uvicorn("bench.contenders.handwritten_channels:application"),
              about="Strawberry's GraphQLProtocolTypeRouter wired by hand, channels-rabbitmq layer, on uvicorn"),
    Contender(YOGA, node_script("yoga.js"), _NODE_ENV, about="graphql-yoga on node:http, graphql-ws, createPubSub"),
    Contender(APOLLO, node_script("apollo.js"), _NODE_ENV,
              about="Apollo Server with express, graphql-ws, graphql-subscriptions PubSub"),
    Contender(APOLLO_STANDALONE, node_script("apollo.js", "--standalone"), _NODE_ENV,
              about="Apollo Server's startStandaloneServer, without express (HTTP only)"),
    Contender(FLOOR, _uvicorn("bench.contenders.floor:app"), about="a raw ASGI app returning fixed bodies, on uvicorn"),
    Contender(FANOUT_FLOOR, node_script("fanout_floor.js"), _NODE_ENV,
              about="no GraphQL: a prepared frame written to each subscriber's socket (what the load side can read)"),
    *(Contender(name, (*_gqlchannels(layer), "--otel"), _traced(ratio),
                about=f"gqlchannels serve --otel, OTLP/HTTP export, {percent} of traces sampled")
      for name, layer, ratio, percent in ((GQL_TRACED, "memory://", "1.0", "100%"),
                                          (GQL_TRACED_1, "memory://", "0.01", "1%"),
                                          (GQL_AMQP_TRACED, AMQP, "1.0", "100%"),
                                          (GQL_AMQP_TRACED_1, AMQP, "0.01", "1%"))),
)}


@dataclass(frozen=True)
class Server:
    name: str
    url: str  # the GraphQL endpoint over HTTP
    pid: int

    @property
    def ws_url(self) -> str:
        return self.url.replace("http://", "ws://", 1)


def post(url: str, body: bytes, timeout: float = 10) -> httpx.Response:
    return httpx.post(url, content=body, headers={"content-type": "application/json"}, timeout=timeout)


@dataclass
class _Launch:
    name: str
    proc: subprocess.Popen[bytes]
    log: IO[bytes]
    url: str


def _launch(name: str) -> _Launch:
    contender = CONTENDERS[name]
    port = free_port()
    log = tempfile.TemporaryFile()
    proc = subprocess.Popen([*contender.command, "--port", str(port)], cwd=ROOT, stdout=log, stderr=subprocess.STDOUT,
                            env={**os.environ, "PYTHONPATH": str(ROOT), **contender.env})
    return _Launch(name, proc, log, f"http://127.0.0.1:{port}/graphql")


def _wait_until_ready(launch: _Launch, deadline: float) -> Server:
    while True:
        try:
            post(launch.url, HELLO, timeout=2)
            return Server(launch.name, launch.url, launch.proc.pid)
        except httpx.HTTPError:
            if launch.proc.poll() is not None or time.monotonic() > deadline:
                launch.log.seek(0)
                raise SystemExit(f"{launch.name} did not start:\n{launch.log.read().decode()[-2000:]}") from None
            time.sleep(0.2)


def _stop(launch: _Launch) -> None:
    launch.proc.terminate()
    try:
        launch.proc.wait(15)
    except subprocess.TimeoutExpired:
        launch.proc.kill()
        launch.proc.wait()
    launch.log.close()


@contextlib.contextmanager
def running(*names: str) -> Iterator[dict[str, Server]]:
    """Start contenders together, each on a free loopback port; yield them once each answers
    `{ hello }`. Running them side by side lets a phase take turns between them, so that a
    change in the machine's load falls on all of them alike."""
    launches: list[_Launch] = []
    try:
        for name in names:
            launches.append(_launch(name))
        deadline = time.monotonic() + START_LIMIT
        yield {launch.name: _wait_until_ready(launch, deadline) for launch in launches}
    finally:
        for launch in launches:
            _stop(launch)


@dataclass(frozen=True)
class WrkRun:
    requests: int
    requests_per_s: float  # error responses included, as wrk counts them
    p50_ms: float
    p99_ms: float
    error_responses: int  # not 2xx or 3xx
    socket_errors: int  # connect, read, write errors and timeouts (2 s) seen by wrk
    cpu_us_per_request: float = float("nan")


_UNIT_MS = {"us": 0.001, "ms": 1.0, "s": 1000.0}


def parse_wrk(output: str) -> WrkRun:
    """The figures of `wrk --latency`'s report."""
    requests = re.search(r"(\d+) requests in", output)
    rate = re.search(r"Requests/sec:\s+([\d.]+)", output)
    if not requests or not rate:
        raise SystemExit(f"wrk's output is not understood:\n{output}")

    def percentile(label: str) -> float:
        found = re.search(rf"^\s+{label}%\s+([\d.]+)(us|ms|s)\s*$", output, re.MULTILINE)
        if not found:
            raise SystemExit(f"no {label}% latency in wrk's output:\n{output}")
        return float(found.group(1)) * _UNIT_MS[found.group(2)]

    error_responses = re.search(r"Non-2xx or 3xx responses: (\d+)", output)
    socket_errors = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", output)
    return WrkRun(int(requests.group(1)), float(rate.group(1)), percentile("50"), percentile("99"),
                  int(error_responses.group(1)) if error_responses else 0,
                  sum(int(n) for n in socket_errors.groups()) if socket_errors else 0)


def wrk(server: Server, body: bytes, seconds: int) -> WrkRun:
    """POST `body` over 32 connections for `seconds`; the server's CPU over exactly that window."""
    before = cpu_seconds(server.pid)
    out = subprocess.run(["wrk", "-t1", "-c32", f"-d{seconds}s", "--latency", "-s", str(ROOT / "bench" / "post.lua"),
                          server.url], capture_output=True, text=True, timeout=seconds + 30,
                         env={**os.environ, "WRK_BODY": body.decode()})
    cpu = cpu_seconds(server.pid) - before
    run = parse_wrk(out.stdout)
    return replace(run, cpu_us_per_request=cpu / run.requests * 1e6 if run.requests else float("nan"))


def ensure_node_modules() -> None:
    """`npm ci` from the committed lock file when node_modules is missing or older than it."""
    installed = NODE_DIR / "node_modules" / ".package-lock.json"
    # One install at a time: two runs in one checkout would otherwise both run `npm ci` into
    # the same node_modules and mix their files.
    with open(NODE_DIR / ".npm-ci.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if installed.exists() and installed.stat().st_mtime >= (NODE_DIR / "package-lock.json").stat().st_mtime:
            return
        if shutil.which("npm") is None or shutil.which("node") is None:
            raise SystemExit("Node and npm are needed for the graphql-yoga and Apollo Server contenders")
        print("Installing the Node contenders: npm ci in bench/node", flush=True)
        done = subprocess.run(["npm", "ci", "--ignore-scripts", "--no-audit", "--no-fund"], cwd=NODE_DIR,
                              capture_output=True, text=True, timeout=600)
        if done.returncode != 0:
            raise SystemExit(f"npm ci failed:\n{done.stderr[-2000:]}")


def check_same_schema() -> None:
    """The Python contenders' schemas print exactly as the Node contenders' schema.graphql."""
    from bench.contenders.schemas import handwritten, ours

    def printed(schema: object) -> str:
        return print_schema(lexicographic_sort_schema(schema))  # type: ignore[arg-type]

    expected = printed(build_schema((NODE_DIR / "schema.graphql").read_text()))
    for name, schema in (("schemas.ours", ours), ("schemas.handwritten", handwritten)):
        if printed(schema._schema) != expected:
            raise SystemExit(f"bench/contenders/{name} differs from bench/node/schema.graphql:\n"
                             f"{printed(schema._schema)}")


def _node_package_version(package: str) -> str:
    manifest = NODE_DIR / "node_modules" / package / "package.json"
    return json.loads(manifest.read_text())["version"] if manifest.exists() else "missing"


def _python_package_version(package: str) -> str:
    try:
        return metadata.version(package)
    except metadata.PackageNotFoundError:
        return "missing"


def _git_revision() -> str:
    def git(*args: str) -> str:
        return subprocess.run(["git", *args], cwd=ROOT, capture_output=True, text=True).stdout.strip()

    changes = " (with uncommitted changes)" if git("status", "--porcelain") else ""
    return git("rev-parse", "--short", "HEAD") + changes


def describe_machine_and_versions() -> list[str]:
    """Lines for the header of a run: what ran, on what, under which load."""
    model = next((line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                  if line.startswith("model name")), platform.machine())
    node = subprocess.run([shutil.which("node") or "node", "--version"], capture_output=True, text=True).stdout.strip()
    load = ", ".join(f"{value:.2f}" for value in os.getloadavg())
    return [
        f"machine: {os.cpu_count()} CPUs ({model}), Linux {platform.release()}; load average at start {load}",
        f"gqlchannels at {_git_revision()}",
        f"Python {platform.python_version()}: "
        + ", ".join(f"{package} {_python_package_version(package)}" for package in PYTHON_PACKAGES),
        f"Node {node} ({shutil.which('node')}): "
        + ", ".join(f"{package} {_node_package_version(package)}" for package in NODE_PACKAGES),
        f"wrk: {subprocess.run(['wrk', '--version'], capture_output=True, text=True).stdout.split(' [')[0].strip()}",
    ]
