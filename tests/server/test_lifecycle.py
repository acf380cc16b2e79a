"""A server's life with one or several workers: SIGTERM (what clients, probes and in-flight
requests see), a worker killed and replaced (what /metrics and /readyz say), and how the
workers share their readiness."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import threading
import time
import uuid
from pathlib import Path

import httpx
import pytest

from gqlchannels.server.readiness import ReadinessBoard
from tests.support.fanout_clients import FANOUT_APP, subscribe, subscribers_on_both_workers
from tests.support.server import ServerProcess


def metric(server: ServerProcess, name: str) -> float:
    for line in httpx.get(f"{server.url}/metrics", timeout=10).text.splitlines():
        if line.startswith(name + " "):
            return float(line.split(" ")[1])
    return 0.0


class Probes(threading.Thread):
    """/readyz one after another until told to stop, on fresh connections (a load balancer's
    health check) or on one kept alive. Records (time, outcome): a status, 'refused', 'hung'
    or 'reset'."""

    def __init__(self, server: ServerProcess, keep_alive: bool) -> None:
        super().__init__(daemon=True)
        self.server = server
        self.client = httpx.Client(timeout=2, limits=httpx.Limits(max_keepalive_connections=1 if keep_alive else 0))
        self.outcomes: list[tuple[float, int | str]] = []
        self.running = True

    def run(self) -> None:
        while self.running:
            at = time.monotonic()
            try:
                outcome: int | str = self.client.get(f"{self.server.url}/readyz").status_code
            except httpx.ConnectError:
                outcome = "refused"
            except httpx.TimeoutException:
                outcome = "hung"
            except httpx.HTTPError:
                outcome = "reset"
            self.outcomes.append((at, outcome))
            time.sleep(0.01)


@pytest.mark.parametrize("workers", [1, 2])
async def test_sigterm_stops_listening_at_once_and_answers_everyone(amqp_url: str, workers: int) -> None:
    with ServerProcess(FANOUT_APP, "--workers", str(workers), "--layer", amqp_url,
                       "--shutdown-timeout", "3") as server:
        room = f"t{uuid.uuid4().hex[:8]}"
        if workers == 2:
            subscribers = await subscribers_on_both_workers(server, room, each=2)
        else:
            subscribers = [await subscribe(server.ws_url, room) for _ in range(3)]
        async with httpx.AsyncClient(timeout=30, limits=httpx.Limits(max_keepalive_connections=0)) as client:
            # In flight on every worker: some finish within --shutdown-timeout, some cannot.
            finishing = [asyncio.create_task(client.post(f"{server.url}/graphql", json={"query": "{ slow(seconds: 1.5) }"}))
                         for _ in range(4)]
            stuck = [asyncio.create_task(client.post(f"{server.url}/graphql", json={"query": "{ slow(seconds: 60) }"}))
                     for _ in range(4)]
            await asyncio.sleep(0.5)
            fresh, kept = Probes(server, keep_alive=False), Probes(server, keep_alive=True)
            fresh.start()
            kept.start()
            await asyncio.sleep(0.2)
            signalled = time.monotonic()
            os.kill(server.proc.pid, signal.SIGTERM)  # the main process only, as docker stop does
            for subscriber in subscribers:
                assert subscriber.reader is not None
                await asyncio.wait_for(subscriber.reader, 10)
                assert subscriber.ws.close_code == 1001  # going away: reconnect elsewhere
            done = await asyncio.gather(*finishing, *stuck)
            exit_code = await asyncio.to_thread(server.proc.wait, 20)
            exited = time.monotonic()
            for probes in (fresh, kept):
                probes.running = False
                probes.join(5)

    assert exit_code == 0
    for response in done[:4]:
        assert response.status_code == 200 and response.json() == {"data": {"slow": "slept 1.5"}}
    for response in done[4:]:  # cut at --shutdown-timeout: 503 to retry elsewhere, never 500
        assert response.status_code == 503
        assert response.json() == {"errors": [{"message": "the server is shutting down; retry"}]}
    after = [(at - signalled, outcome) for at, outcome in fresh.outcomes if at >= signalled]
    # The listening socket closed at once: a new connection is refused, not queued (hung)
    # until the last worker exits, long before the stuck requests are cut.
    first_refused = next(at for at, outcome in after if outcome == "refused")
    kept_after = [(round(at - signalled, 3), outcome) for at, outcome in kept.outcomes if at >= signalled]
    print(f"\n{workers} worker(s): first new connection refused {first_refused * 1000:.0f} ms after SIGTERM, "
          f"exit after {exited - signalled:.2f} s; on a kept-alive connection: {kept_after[:4]}")
    assert first_refused < exited - signalled - 2
    assert "hung" not in [outcome for _, outcome in after + kept_after]
    # From the first answer that is not 200, /readyz never says ready again, on any connection.
    for outcomes in (after, kept_after):
        first_not_ready = next(i for i, (_, outcome) in enumerate(outcomes) if outcome != 200)
        assert 200 not in [outcome for _, outcome in outcomes[first_not_ready:]]
    log = server.log()
    assert "Traceback" not in log and "Exception in ASGI application" not in log and '" 500' not in log, log


def replacement_started(log: str, victim: int) -> bool:
    """Whether uvicorn has replaced the dead worker and the new one finished its startup."""
    _, died, after = log.partition(f"Child process [{victim}] died")
    return bool(died) and "Application startup complete." in after


async def test_a_killed_worker_is_replaced_and_its_metrics_dropped(amqp_url: str) -> None:
    with ServerProcess(FANOUT_APP, "--workers", "2", "--layer", amqp_url) as server:
        room = f"k{uuid.uuid4().hex[:8]}"
        subscribers = await subscribers_on_both_workers(server, room, each=3)
        assert metric(server, "gqlchannels_websocket_connections") == len(subscribers)
        assert metric(server, "gqlchannels_subscriptions_active") == len(subscribers)
        victim = subscribers[0].worker
        survivors = [s for s in subscribers if s.worker != victim]
        os.kill(victim, signal.SIGKILL)
        killed = time.monotonic()
        for subscriber in subscribers:
            if subscriber.worker == victim:
                assert subscriber.reader is not None
                await asyncio.wait_for(subscriber.reader, 10)  # its clients see the connection go

        # Replaced, and the dead worker's gauges gone: what /metrics says is what is open.
        # /readyz answers 200 before the replacement has posted anything (it has no clients
        # yet), so the replacement's startup (its layer connected) is waited for as well.
        deadline = time.monotonic() + 20
        while (not replacement_started(server.log(), victim)
               or metric(server, "gqlchannels_websocket_connections") != len(survivors)
               or metric(server, "gqlchannels_layer_connected") != 1
               or httpx.get(f"{server.url}/readyz").status_code != 200):
            assert time.monotonic() < deadline, (f"{len(survivors)} open, /metrics says "
                                                 f"{metric(server, 'gqlchannels_websocket_connections'):.0f}",
                                                 httpx.get(f"{server.url}/readyz").json())
            await asyncio.sleep(0.2)
        print(f"\nkilled worker {victim}: {len(subscribers)} WebSockets before, {len(survivors)} open after; "
              f"/metrics says {metric(server, 'gqlchannels_websocket_connections'):.0f} WebSockets, "
              f"{metric(server, 'gqlchannels_subscriptions_active'):.0f} subscriptions, "
              f"replaced and ready {time.monotonic() - killed:.2f} s after the kill")
        assert metric(server, "gqlchannels_subscriptions_active") == len(survivors)
        assert metric(server, "gqlchannels_layer_connected") == 1

        # The clients reconnect, to whichever worker, and are counted once each.
        returning = [await subscribe(server.ws_url, room) for _ in range(len(subscribers) - len(survivors))]
        assert victim not in {s.worker for s in returning}
        assert metric(server, "gqlchannels_websocket_connections") == len(subscribers)
        for subscriber in survivors + returning:
            await subscriber.ws.close()
    assert f"Child process [{victim}] died" in server.log()


def test_workers_share_readiness(tmp_path: Path) -> None:
    sibling = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        mine, theirs = ReadinessBoard(tmp_path), ReadinessBoard(tmp_path, pid=sibling.pid)
        mine.post(None)
        theirs.post("starting")
        assert mine.sibling_not_ready() == f"worker {sibling.pid}: starting"
        assert theirs.sibling_not_ready() is None
        theirs.post("channel layer is not connected to the broker: connection refused at 127.0.0.1:5672")
        assert mine.sibling_not_ready() == (f"worker {sibling.pid}: channel layer is not connected to the "
                                            "broker: connection refused at 127.0.0.1:5672")
        theirs.post(None)
        assert mine.sibling_not_ready() is None
        theirs.post("shutting down")
        sibling.kill()
        sibling.wait()
        assert mine.sibling_not_ready() is None  # a dead worker's last word does not count
        assert json.loads((tmp_path / f"ready-{sibling.pid}.json").read_text()) == {"reason": "shutting down"}
        theirs.leave()
        assert not (tmp_path / f"ready-{sibling.pid}.json").exists()
    finally:
        sibling.kill()
        sibling.wait()
