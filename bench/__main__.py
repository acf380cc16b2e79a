"""Benchmark gqlchannels against the plain alternatives, side by side in one run.

    python -m bench            # full run, a few minutes
    python -m bench --quick    # smoke run

Starts each contender itself on a free loopback port with one worker, drives it from a
separate process (wrk for HTTP, bench/ws_client.py for WebSockets), one contender at a time,
and prints absolute figures and ratios. Needs wrk (apt-get install wrk) and RabbitMQ on
127.0.0.1:5672. Every phase is bounded in time.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import re
import resource
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parents[1]
AMQP = "amqp://guest:guest@127.0.0.1:5672/"
QUERY = {"query": "{ hello }"}
PY = sys.executable


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def uvicorn(target: str, *extra: str) -> list[str]:
    return [PY, "-m", "uvicorn", target, "--log-level", "warning", "--no-access-log", *extra]


CONTENDERS: dict[str, list[str]] = {
    "gqlchannels": [PY, "-m", "gqlchannels", "serve", "bench.contenders.schemas:ours", "--layer", AMQP,
                    "--log-level", "warning", "--no-graphql-ide"],
    "plain strawberry": uvicorn("bench.contenders.plain_strawberry:app", "--lifespan", "off"),
    "seed setup": uvicorn("bench.contenders.seed_setup:application", "--lifespan", "off"),
    "floor": uvicorn("bench.contenders.floor:app", "--lifespan", "off"),
}


@contextlib.contextmanager
def running(name: str) -> Iterator[tuple[str, int]]:
    """Start a contender; yield (base URL, pid)."""
    port = free_port()
    command = CONTENDERS[name] + ["--port", str(port)]
    log = tempfile.TemporaryFile()
    proc = subprocess.Popen(command, cwd=ROOT, stdout=log, stderr=subprocess.STDOUT,
                            env={**os.environ, "PYTHONPATH": str(ROOT)})
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                httpx.post(f"{url}/graphql", json=QUERY, timeout=2)
                break
            except httpx.HTTPError:
                if proc.poll() is not None or time.monotonic() > deadline:
                    log.seek(0)
                    raise SystemExit(f"{name} did not start:\n{log.read().decode()[-2000:]}")
                time.sleep(0.2)
        yield url, proc.pid
    finally:
        proc.terminate()
        try:
            proc.wait(15)
        except subprocess.TimeoutExpired:
            proc.kill()


def rss_kb(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise RuntimeError("no VmRSS")


def http_rps(url: str, seconds: int) -> float:
    script = ROOT / "bench" / "post.lua"
    out = subprocess.run(["wrk", "-t1", "-c32", f"-d{seconds}s", "-s", str(script), f"{url}/graphql"],
                         capture_output=True, text=True, timeout=seconds + 30).stdout
    non_2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    if non_2xx:
        raise SystemExit(f"{url}: {non_2xx.group(1)} error responses under load")
    return float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))


def bench_http(seconds: int, repeats: int) -> dict[str, list[float]]:
    results: dict[str, list[float]] = {}
    expected = None
    for name in CONTENDERS:
        with running(name) as (url, _):
            body = httpx.post(f"{url}/graphql", json=QUERY).json()
            expected = expected or body
            assert body == expected, f"{name} answers {body}, not {expected}"  # identical responses
            http_rps(url, 1)  # warm up
            results[name] = [http_rps(url, seconds) for _ in range(repeats)]
    return results


def ws_client(*args: str, timeout: float = 300) -> dict[str, object]:
    out = subprocess.run([PY, "-m", "bench.ws_client", *args], cwd=ROOT, capture_output=True, text=True,
                         timeout=timeout, env={**os.environ, "PYTHONPATH": str(ROOT)})
    if out.returncode != 0:
        raise SystemExit(f"ws_client {args[0]} failed:\n{out.stderr[-2000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def bench_fanout(subscribers: int, messages: int, repeats: int) -> dict[str, list[dict[str, object]]]:
    results: dict[str, list[dict[str, object]]] = {}
    for name in ("gqlchannels", "seed setup"):
        with running(name) as (url, _):
            ws = url.replace("http", "ws") + "/graphql"
            results[name] = [ws_client("fanout", ws, f"{url}/graphql", "--subscribers", str(subscribers),
                                       "--messages", str(messages)) for _ in range(repeats)]
    return results


def bench_memory(connections: int, per_connection: int, names: tuple[str, ...],
                 deflate: bool = False) -> dict[str, dict[str, float]]:
    results: dict[str, dict[str, float]] = {}
    for name in names:
        with running(name) as (url, pid):
            ws = url.replace("http", "ws") + "/graphql"
            before = rss_kb(pid)
            proc = subprocess.Popen([PY, "-m", "bench.ws_client", "hold", ws, f"{url}/graphql", "--connections",
                                     str(connections), "--per-connection", str(per_connection),
                                     *(["--deflate"] if deflate else [])],
                                    cwd=ROOT, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
                                    env={**os.environ, "PYTHONPATH": str(ROOT)})
            try:
                line = proc.stdout.readline()  # type: ignore[union-attr]
                if not line:
                    raise SystemExit(f"{name}: the holding client failed")
                held = json.loads(line)["ready"]
                time.sleep(1)
                after = rss_kb(pid)
            finally:
                proc.stdin.close()  # type: ignore[union-attr]
                proc.wait(60)
            results[name] = {"subscriptions": held, "rss_mb": after / 1024,
                             "kb_per_connection": (after - before) / connections}
    return results


def ratio(a: float, b: float) -> str:
    return f"{a / b:.2f}x" if b else "n/a"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="short runs, fewer clients")
    args = parser.parse_args()
    if shutil.which("wrk") is None:
        raise SystemExit("wrk is needed: apt-get install wrk")
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))  # contenders inherit it: thousands of sockets
    seconds, repeats = (3, 1) if args.quick else (8, 3)
    subscribers, messages = (100, 5) if args.quick else (500, 20)
    idle, many = (200, (100, 10)) if args.quick else (2000, (1000, 10))

    print(f"HTTP {{ hello }}: wrk -c32, {seconds} s x {repeats}", flush=True)
    http = bench_http(seconds, repeats)
    ours = statistics.median(http["gqlchannels"])
    for name, values in http.items():
        print(f"  {name:18} {statistics.median(values):9.0f} req/s  (runs: {', '.join(f'{v:.0f}' for v in values)})"
              f"  ours/this {ratio(ours, statistics.median(values))}")

    print(f"\nFan-out through RabbitMQ: {subscribers} subscribers x {messages} messages, x {repeats}", flush=True)
    fan = bench_fanout(subscribers, messages, repeats)
    for name, runs in fan.items():
        rate = statistics.median(float(r["deliveries_per_s"]) for r in runs)
        p99 = statistics.median(float(r["p99_ms"]) for r in runs)
        p50 = statistics.median(float(r["p50_ms"]) for r in runs)
        lost = sum(int(r["expected"]) - int(r["delivered"]) for r in runs)
        print(f"  {name:18} {rate:9.0f} deliveries/s  p50 {p50:6.1f} ms  p99 {p99:6.1f} ms  lost {lost}"
              f"  (rates: {', '.join(str(round(float(r['deliveries_per_s']))) for r in runs)})")
    ours_rate = statistics.median(float(r["deliveries_per_s"]) for r in fan["gqlchannels"])
    seed_rate = statistics.median(float(r["deliveries_per_s"]) for r in fan["seed setup"])
    print(f"  gqlchannels/seed deliveries/s: {ratio(ours_rate, seed_rate)}")

    for clients, deflate in (("", False), (" from browser-like clients (offering permessage-deflate)", True)):
        print(f"\nMemory: {idle} idle subscribed WebSockets{clients}", flush=True)
        memory = bench_memory(idle, 1, ("gqlchannels", "seed setup"), deflate=deflate)
        for name, figures in memory.items():
            print(f"  {name:18} {figures['kb_per_connection']:6.1f} KB per connection  (RSS {figures['rss_mb']:.0f} MB)")
    print(f"\nCapacity: {many[0] * many[1]} subscriptions ({many[0]} connections x {many[1]}) in one worker", flush=True)
    held = bench_memory(many[0], many[1], ("gqlchannels",))["gqlchannels"]
    print(f"  gqlchannels        {held['subscriptions']:.0f} held and delivering, RSS {held['rss_mb']:.0f} MB")


if __name__ == "__main__":
    main()
