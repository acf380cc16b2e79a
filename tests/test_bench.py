"""The benchmark's instrument: its contenders serve one schema and answer alike, its fan-out
client keeps subscribers apart, and what it reads from wrk and /proc is read right. The
figures themselves belong to `python -m bench`, not to tests."""

from __future__ import annotations

import dataclasses
import os
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator

import pytest

from bench.__main__ import QUICK, LoadFailed, fanout_run, hold
from bench.harness import (
    APOLLO,
    APOLLO_STANDALONE,
    FANOUT_FLOOR,
    FLOOR,
    GQL_AMQP,
    GQL_MEMORY,
    YOGA,
    Server,
    check_same_schema,
    ensure_node_modules,
    parse_wrk,
    post,
    running,
)
from bench.operations import HELLO, NESTED
from bench.procstat import cpu_seconds, rss_kb, stat_fields

WRK_OUTPUT = """\
Running 6s test @ http://127.0.0.1:40211/graphql
  1 threads and 32 connections
  Thread Stats   Avg      Stdev     Max   +/- Stdev
    Latency     1.87ms    1.18ms  14.59ms   88.69%
    Req/Sec    17.71k     4.48k   22.80k    72.73%
  Latency Distribution
     50%  812.00us
     75%    2.32ms
     90%    2.74ms
     99%    1.20s
  19380 requests in 6.10s, 2.94MB read
  Socket errors: connect 0, read 1, write 0, timeout 3
Requests/sec:   3177.05
Transfer/sec:      2.67MB
"""


@pytest.fixture(scope="module")
def node_contenders() -> None:
    ensure_node_modules()  # npm ci from bench/node/package-lock.json on a clean checkout


@pytest.fixture(scope="module")
def servers(node_contenders: None, amqp_url: str) -> Iterator[dict[str, Server]]:
    with running(GQL_MEMORY, GQL_AMQP, YOGA, APOLLO, APOLLO_STANDALONE) as started:
        yield started


def test_python_contenders_serve_the_node_contenders_schema() -> None:
    check_same_schema()  # raises SystemExit with the difference


def test_every_contender_answers_hello_as_gqlchannels_does(servers: dict[str, Server]) -> None:
    answers = {name: post(server.url, HELLO) for name, server in servers.items()}
    assert answers[GQL_MEMORY].content == b'{"data":{"hello":"Hello, world!"}}'
    assert answers[YOGA].content == answers[GQL_MEMORY].content
    for name, answer in answers.items():
        assert (answer.status_code, answer.json()) == (200, {"data": {"hello": "Hello, world!"}}), name


def test_every_contender_answers_the_nested_query_alike(servers: dict[str, Server]) -> None:
    answers = {name: post(server.url, NESTED) for name, server in servers.items()}
    books = answers[GQL_MEMORY].json()["data"]["books"]
    assert len(books) == 20
    assert books[3] == {"id": "4", "title": "Book 4", "year": 1993, "rating": 3.5, "inStock": False,
                        "author": {"id": "a3", "name": "Author 3"}}
    for name, answer in answers.items():
        assert (answer.status_code, answer.json()) == (200, answers[GQL_MEMORY].json()), name


@pytest.mark.parametrize("name", [GQL_MEMORY, GQL_AMQP, YOGA, APOLLO])
def test_fanout_with_the_per_subscriber_field_gives_each_subscriber_its_own_viewer(
        servers: dict[str, Server], name: str) -> None:
    report = fanout_run(servers[name], dataclasses.replace(QUICK, subscribers=5, messages=3), viewer=True)
    assert (report["delivered"], report["expected"], report["wrong_viewer"]) == (15, 15, 0)
    assert 0 < report["p50_ms"] <= report["p99_ms"]
    assert report["server_cpu_us_per_delivery"] >= 0 and report["client_cpu_share"] > 0


def test_the_fanout_floor_is_counted_as_a_contender_is(servers: dict[str, Server]) -> None:
    """The fan-out floor (no GraphQL, prepared frames) speaks graphql-transport-ws well enough
    for the load client to count its deliveries as it counts gqlchannels'."""
    size = dataclasses.replace(QUICK, subscribers=40, messages=7)
    with running(FANOUT_FLOOR) as started:
        reports = [fanout_run(server, size, viewer=False) for server in (started[FANOUT_FLOOR], servers[GQL_MEMORY])]
    for report in reports:
        assert (report["delivered"], report["expected"], report["wrong_viewer"]) == (280, 280, 0)
        assert 0 < report["p50_ms"] <= report["p99_ms"]


def test_a_contender_that_does_not_cope_is_a_result_not_the_end_of_the_bench() -> None:
    with running(FLOOR) as started:  # it answers every POST with { hello }'s answer and refuses WebSockets
        floor = started[FLOOR]
        with pytest.raises(LoadFailed) as failure:
            fanout_run(floor, QUICK, viewer=False)
        assert str(failure.value) == "server rejected WebSocket connection: HTTP 500"  # from bench/node/fanout.js
        held = hold(floor, connections=3, per_connection=1)
        assert held.failed and held.failure == "InvalidStatus: server rejected WebSocket connection: HTTP 500"


def test_wrk_report_is_read_in_milliseconds_with_its_errors() -> None:
    run = parse_wrk(WRK_OUTPUT)
    assert (run.requests, run.requests_per_s, run.p50_ms, run.p99_ms, run.error_responses, run.socket_errors) == (
        19380, 3177.05, 0.812, 1200.0, 0, 4)
    failing = parse_wrk(WRK_OUTPUT.replace("Requests/sec", "  Non-2xx or 3xx responses: 12\nRequests/sec"))
    assert failing.error_responses == 12


def test_cpu_seconds_count_the_children_of_a_server() -> None:
    burn = "import time\nend = time.process_time() + 0.5\nwhile time.process_time() < end: pass\n"
    parent = subprocess.Popen([sys.executable, "-c", textwrap.dedent(f"""
        import subprocess, sys, time
        subprocess.Popen([sys.executable, "-c", {burn!r}])
        time.sleep(30)
    """)])
    try:
        deadline = time.monotonic() + 20
        while cpu_seconds(parent.pid) < 0.4:  # the parent itself sleeps: this is its child's time
            assert time.monotonic() < deadline, "the child's CPU time was never counted"
            time.sleep(0.1)
        assert rss_kb(parent.pid) > 0
    finally:
        parent.kill()
        parent.wait()


def test_procstat_fields_survive_a_command_name_with_spaces_and_parentheses() -> None:
    pr_set_name = 15  # prctl's option: what /proc/<pid>/stat shows in parentheses
    child = subprocess.Popen([sys.executable, "-c", textwrap.dedent(f"""
        import ctypes, sys, time
        ctypes.CDLL(None).prctl({pr_set_name}, b"x) 1 2 (y", 0, 0, 0)
        print("named", flush=True)
        time.sleep(30)
    """)], stdout=subprocess.PIPE, text=True)
    try:
        assert child.stdout is not None and child.stdout.readline() == "named\n"
        fields = stat_fields(child.pid)
        assert fields[0] in "RSD"  # the state, right after the name
        assert int(fields[1]) == os.getpid()  # the parent
    finally:
        child.kill()
        child.wait()
