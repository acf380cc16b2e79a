"""Publishing from anywhere (a script, the CLI, many calls from one process) to live
WebSocket subscribers through RabbitMQ; and subscriptions written with context["events"]
that see only their own groups and leave them when the client goes."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import textwrap
import time
import uuid

import pytest

from tests.support.broker import bound_groups
from tests.support.gql_clients import JOIN_ROOMS, Subscriber
from tests.support.server import ServerProcess, clean_env, run_cli


def room() -> str:
    return f"pub-{uuid.uuid4().hex[:10]}"


def run_script(code: str, amqp_url: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-c", textwrap.dedent(code)], capture_output=True, text=True,
                          timeout=timeout, env=clean_env(GQLCHANNELS_LAYER_URL=amqp_url))




def wait_until_unbound(group: str, timeout: float = 10) -> set[str]:
    deadline = time.monotonic() + timeout
    while (bound := bound_groups(group)) and time.monotonic() < deadline:
        time.sleep(0.2)
    return bound


async def test_script_in_another_process_reaches_subscriber(amqp_server: ServerProcess, amqp_url: str) -> None:
    name = room()
    subscriber = await Subscriber.open(amqp_server.ws_url)
    try:
        await subscriber.join_room(name)
        result = await asyncio.to_thread(run_script, f"""
            import gqlchannels
            gqlchannels.publish("chat-room-{name}", {{"type": "chat.message", "room_id": "{name}", "message": "from a script"}})
        """, amqp_url)
        assert result.returncode == 0, result.stderr
        assert await subscriber.messages_until("from a script")
    finally:
        await subscriber.close()


async def test_cli_publish_reaches_subscriber(amqp_server: ServerProcess, amqp_url: str) -> None:
    name = room()
    subscriber = await Subscriber.open(amqp_server.ws_url, "graphql-ws")
    try:
        await subscriber.join_room(name)
        env = clean_env(GQLCHANNELS_LAYER_URL=amqp_url)
        by_argument = await asyncio.to_thread(
            run_cli, "publish", f"chat-room-{name}", json.dumps({"room_id": name, "message": "by argument"}),
            "--type", "chat.message", env=env)
        assert by_argument.returncode == 0, by_argument.stderr
        by_stdin = await asyncio.to_thread(
            subprocess.run, [sys.executable, "-m", "gqlchannels", "publish", f"chat-room-{name}"],
            input=json.dumps({"type": "chat.message", "room_id": name, "message": "by stdin"}),
            capture_output=True, text=True, timeout=60, env=env)
        assert by_stdin.returncode == 0, by_stdin.stderr
        assert await subscriber.messages_until("by argument")
        assert await subscriber.messages_until("by stdin")
    finally:
        await subscriber.close()


async def test_many_publishes_from_one_process_in_every_style(amqp_server: ServerProcess, amqp_url: str) -> None:
    # A fresh event loop per call is what async_to_sync in a task runner does: it broke the
    # plain RabbitMQ layer on the second call.
    name = room()
    subscriber = await Subscriber.open(amqp_server.ws_url)
    try:
        await subscriber.join_room(name)
        result = await asyncio.to_thread(run_script, f"""
            import asyncio, threading
            from asgiref.sync import async_to_sync
            import gqlchannels

            def message(i):
                return {{"type": "chat.message", "room_id": "{name}", "message": str(i)}}

            group = "chat-room-{name}"
            for i in range(0, 50):
                gqlchannels.publish(group, message(i))
            for i in range(50, 100):
                asyncio.run(gqlchannels.apublish(group, message(i)))
            for i in range(100, 150):
                async_to_sync(gqlchannels.apublish)(group, message(i))
            thread = threading.Thread(target=lambda: [gqlchannels.publish(group, message(i)) for i in range(150, 200)])
            thread.start(); thread.join()
        """, amqp_url)
        assert result.returncode == 0, result.stderr
        received: set[str] = set()
        async with asyncio.timeout(30):
            while len(received) < 200:
                received.add((await subscriber.next_data())["joinChatRooms"]["message"])
        assert received == {str(i) for i in range(200)}
    finally:
        await subscriber.close()


async def test_two_subscriptions_on_one_connection_see_only_their_own_rooms(amqp_server: ServerProcess) -> None:
    first, second = room(), room()
    ws = await Subscriber.open(amqp_server.ws_url)
    try:
        for op_id, name in (("a", first), ("b", second)):
            await ws.send({"id": op_id, "type": "subscribe",
                           "payload": {"query": JOIN_ROOMS, "variables": {"rooms": [{"id": name}]}}})
        joined = set()
        while len(joined) < 2:  # each subscription announces itself to its own room only
            message = await ws.recv()
            joined.add(message["id"])
        for name in (first, second):
            await asyncio.to_thread(run_script, f"""
                import gqlchannels
                gqlchannels.publish("chat-room-{name}", {{"type": "chat.message", "room_id": "{name}", "message": "to {name}"}})
            """, amqp_server_url(amqp_server))
        seen: dict[str, list[str]] = {"a": [], "b": []}
        async with asyncio.timeout(15):
            while len(seen["a"]) + len(seen["b"]) < 2:
                message = await ws.recv()
                seen[message["id"]].append(message["payload"]["data"]["joinChatRooms"]["message"])
        with pytest.raises(TimeoutError):  # and nothing else arrives
            await ws.recv(timeout=0.5)
        assert seen == {"a": [f"to {first}"], "b": [f"to {second}"]}
    finally:
        await ws.close()


def amqp_server_url(server: ServerProcess) -> str:
    return server.args[server.args.index("--layer") + 1]


async def test_unsubscribe_and_disconnect_leave_no_group_bound(amqp_server: ServerProcess) -> None:
    completed, disconnected = room(), room()
    subscriber = await Subscriber.open(amqp_server.ws_url)
    await subscriber.join_room(completed)
    assert bound_groups(f"chat-room-{completed}") == {f"chat-room-{completed}"}
    await subscriber.send({"id": subscriber.op_id, "type": "complete"})
    assert await asyncio.to_thread(wait_until_unbound, f"chat-room-{completed}") == set()
    await subscriber.close()

    subscriber = await Subscriber.open(amqp_server.ws_url, "graphql-ws")
    await subscriber.join_room(disconnected)
    assert bound_groups(f"chat-room-{disconnected}") == {f"chat-room-{disconnected}"}
    subscriber.ws.transport.abort()  # the client vanishes: no close frame, no complete
    assert await asyncio.to_thread(wait_until_unbound, f"chat-room-{disconnected}") == set()


def test_unserializable_payload_is_refused_with_its_name(amqp_url: str) -> None:
    result = run_script("""
        import datetime
        import gqlchannels
        try:
            gqlchannels.publish("some-room", {"type": "chat.message", "sent": {"at": datetime.datetime(2026, 1, 1)}})
        except gqlchannels.MessageNotSerializable as exc:
            print(exc)
        try:
            gqlchannels.publish("some-room", {"type": "chat.message", "counts": {1: "one"}})
        except gqlchannels.MessageNotSerializable as exc:
            print(exc)
    """, amqp_url)
    lines = result.stdout.splitlines()
    assert "message['sent']['at'] is a datetime.datetime" in lines[0], result.stdout + result.stderr
    assert "message['counts'] has the key 1 of type int; keys must be strings" in lines[1]


@pytest.mark.parametrize(("args", "fragment"), [
    (["bad group!", "{}", "--type", "t"], "group name 'bad group!' is not valid"),
    (["room", "[1, 2]", "--type", "t"], "PAYLOAD must be a JSON object"),
    (["room", "{nope", "--type", "t"], "PAYLOAD is not valid JSON"),
    (["room", "{}"], "give the message a type"),
    (["room", "{}", "--type", "t", "--layer", "memory://"], "memory:// lives inside one server process"),
])
def test_cli_publish_bad_input_is_one_line(args: list[str], fragment: str, amqp_url: str) -> None:
    env = clean_env(GQLCHANNELS_LAYER_URL=amqp_url)
    result = run_cli("publish", *args, env=env)
    assert result.returncode == 1
    assert result.stderr.strip().splitlines() == [result.stderr.strip()], result.stderr
    assert fragment in result.stderr


def test_cli_publish_to_a_refusing_port_says_connection_refused() -> None:
    result = run_cli("publish", "room", "{}", "--type", "t", "--timeout", "30",
                     "--layer", "amqp://guest:secret@127.0.0.1:1/")
    assert result.returncode == 1
    assert result.stderr.strip() == ("Error: could not publish to group 'room': connection refused at "
                                     "127.0.0.1:1 (is RabbitMQ running and listening there?)")
