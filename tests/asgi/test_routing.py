"""The routers return the routed app's awaitable instead of awaiting it, so none of their
frames stays on the stack while a WebSocket is open; they remain ASGI 3 single callables."""

from __future__ import annotations

import subprocess
import sys
import textwrap

from gqlchannels.overrides import channels_consumers
from tests.support.server import clean_env

CHECK = textwrap.dedent("""
    import asyncio, json
    from asgiref.compatibility import is_double_callable
    from asgiref.testing import ApplicationCommunicator
    from gqlchannels import build_application
    from gqlchannels.examples.chat import schema

    app = build_application(schema)
    print("double callable:", is_double_callable(app), is_double_callable(app.application_mapping["websocket"]))

    async def main():
        scope = {"type": "websocket", "path": "/graphql", "headers": [], "subprotocols": ["graphql-transport-ws"],
                 "query_string": b""}
        communicator = ApplicationCommunicator(app, scope)
        await communicator.send_input({"type": "websocket.connect"})
        assert (await communicator.receive_output(5))["type"] == "websocket.accept"
        await communicator.send_input({"type": "websocket.receive", "text": json.dumps({"type": "connection_init"})})
        print("answer:", json.loads((await communicator.receive_output(5))["text"]))
        frames, awaited = [], communicator.future.get_coro()
        while awaited is not None and hasattr(awaited, "cr_code"):
            frames.append(awaited.cr_code.co_qualname)
            awaited = awaited.cr_await
        print("frames:", " > ".join(frames))
        await communicator.send_input({"type": "websocket.disconnect", "code": 1000})
        await communicator.wait(5)

    asyncio.run(main())
""")


def test_an_open_websocket_holds_no_router_frames() -> None:
    result = subprocess.run([sys.executable, "-c", CHECK], capture_output=True, text=True, timeout=60, env=clean_env())
    lines = dict(line.split(": ", 1) for line in result.stdout.splitlines() if ": " in line)
    assert lines.get("double callable") == "False False", result.stdout + result.stderr
    assert lines.get("answer") == "{'type': 'connection_ack'}", result.stdout + result.stderr
    frames = lines["frames"].split(" > ")
    assert frames[0] == "WebSocketTracker.__call__"  # the routers handed over to it and left
    # the consumer, made by the tracker, not by as_asgi's wrapper
    assert frames[1] == ("DirectWebSocket.__call__" if channels_consumers.GATE.active else "AsyncConsumer.__call__")
    assert not any("Router" in frame or "as_asgi" in frame for frame in frames), frames
