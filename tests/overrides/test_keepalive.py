"""The keepalive clock that every WebSocket connection of a server shares (its use by the
server is tested in tests/test_ws_protocol.py)."""

from __future__ import annotations

import asyncio
import logging

import pytest

from gqlchannels.overrides.keepalive import KeepaliveClock, clock_for, resolution_for

RESOLUTION = 0.02


class Recorder:
    def __init__(self, name: str, calls: list[tuple[str, float]], fails: bool = False) -> None:
        self.name = name
        self.calls = calls
        self.fails = fails

    def keepalive_due(self, tick: int) -> None:
        self.calls.append((self.name, asyncio.get_running_loop().time()))
        if self.fails:
            raise RuntimeError("this connection is broken")


async def wait_for_calls(calls: list[tuple[str, float]], count: int) -> None:
    async with asyncio.timeout(5):
        while len(calls) < count:
            await asyncio.sleep(RESOLUTION)


async def test_each_waiter_is_called_once_in_deadline_order_and_never_early() -> None:
    clock = KeepaliveClock(RESOLUTION)
    calls: list[tuple[str, float]] = []
    start = asyncio.get_running_loop().time()
    delays = {"c": 0.3, "a": 0.05, "b": 0.15, "a2": 0.05}
    for name, delay in delays.items():
        clock.schedule(Recorder(name, calls), delay)
    await wait_for_calls(calls, 4)
    await asyncio.sleep(RESOLUTION * 3)
    assert sorted(name for name, _ in calls[:2]) == ["a", "a2"]
    assert [name for name, _ in calls[2:]] == ["b", "c"]
    for name, at in calls:
        assert at - start >= delays[name] - 0.002  # libuv's timers count whole milliseconds


async def test_a_cancelled_waiter_is_not_called_and_an_empty_clock_holds_no_timer() -> None:
    clock = KeepaliveClock(RESOLUTION)
    calls: list[tuple[str, float]] = []
    cancelled = Recorder("cancelled", calls)
    tick = clock.schedule(cancelled, 0.05)
    clock.cancel(cancelled, tick)
    assert clock.timer is None  # nothing waits: no timer keeps the loop referenced
    clock.schedule(Recorder("kept", calls), 0.1)
    await wait_for_calls(calls, 1)
    await asyncio.sleep(0.1)
    assert [name for name, _ in calls] == ["kept"]
    assert clock.timer is None and not clock.buckets


async def test_a_failing_waiter_does_not_stop_the_others(caplog: pytest.LogCaptureFixture) -> None:
    clock = KeepaliveClock(RESOLUTION)
    calls: list[tuple[str, float]] = []
    for name in ("first", "second", "third"):
        clock.schedule(Recorder(name, calls, fails=name == "second"), 0.05)
    with caplog.at_level(logging.ERROR, logger="gqlchannels"):
        await wait_for_calls(calls, 3)
    assert sorted(name for name, _ in calls) == ["first", "second", "third"]
    assert "keepalive of a WebSocket connection failed" in caplog.text


async def test_a_waiter_may_schedule_again_when_called() -> None:
    """As a connection does: its ping is due, it pings and waits for the pong."""
    clock = KeepaliveClock(RESOLUTION)
    calls: list[tuple[str, float]] = []

    class Again(Recorder):
        def keepalive_due(self, tick: int) -> None:
            super().keepalive_due(tick)
            if len(self.calls) < 3:
                clock.schedule(self, 0.05)

    clock.schedule(Again("again", calls), 0.05)
    await wait_for_calls(calls, 3)
    assert [name for name, _ in calls] == ["again"] * 3


async def test_one_clock_per_loop_and_resolution() -> None:
    assert clock_for(0.25) is clock_for(0.25)
    assert clock_for(0.25) is not clock_for(0.05)
    assert resolution_for(20, 20) == 0.25
    assert resolution_for(0.5, 0.5) == 0.05
    assert resolution_for(20, None) == 0.25


async def test_the_timer_stays_armed_for_the_earliest_deadline() -> None:
    """A waiter that schedules a later deadline while being called must not push back an
    earlier deadline that was already waiting."""
    clock = KeepaliveClock(RESOLUTION)
    calls: list[tuple[str, float]] = []

    class Later(Recorder):
        def keepalive_due(self, tick: int) -> None:
            super().keepalive_due(tick)
            clock.schedule(self, 5.0)  # e.g. a pong deadline far off

    clock.schedule(Later("later", calls), 0.05)
    clock.schedule(Recorder("waiting", calls), 0.3)
    await wait_for_calls(calls, 1)
    assert clock.armed_tick == min(clock.buckets)  # the 0.3 s deadline, not the 5 s one
    await wait_for_calls(calls, 2)
    assert [name for name, _ in calls] == ["later", "waiting"]
