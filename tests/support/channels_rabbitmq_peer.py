"""channels-rabbitmq 4.0.1's own layer in a process of its own, for the wire-compatibility test.

channels-rabbitmq needs carehare, which needs pamqp 3, and aiormq 7 needs pamqp 4: the two
cannot share the test environment. So the test drives the real channels-rabbitmq in a virtual
environment of its own, made once per Python version in pytest's cache directory, against the
same broker as our layer.

Run as a script (`python channels_rabbitmq_peer.py AMQP_URL`), this module is that peer: it
prints one JSON line naming the versions it runs, then answers one JSON command per line on
stdin with one JSON line on stdout (`{"result": ...}` or `{"error": "..."}`). Imported by the
tests, it makes the environment and drives the peer. Standard library only, at the top level:
the peer's environment has nothing of the tests.
"""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import venv
from pathlib import Path
from typing import Any

REQUIREMENT = "channels-rabbitmq==4.0.1"
REPLY_TIMEOUT = 30.0  # seconds for any reply beyond the receive timeout asked for


def peer_python(cache: Path) -> Path:
    """The Python of a virtual environment with channels-rabbitmq, made in `cache` if missing."""
    env_dir = cache / f"py{sys.version_info.major}{sys.version_info.minor}"
    python = env_dir / "bin" / "python"
    stamp = env_dir / "installed.txt"
    if stamp.exists() and stamp.read_text() == REQUIREMENT and python.exists():
        return python
    venv.EnvBuilder(with_pip=True, clear=True).create(env_dir)
    result = subprocess.run([str(python), "-m", "pip", "install", "-q", REQUIREMENT],
                            capture_output=True, text=True, timeout=600)
    if result.returncode != 0:
        raise RuntimeError(f"could not install {REQUIREMENT} for the compatibility test:\n"
                           f"{result.stdout[-2000:]}{result.stderr[-2000:]}")
    stamp.write_text(REQUIREMENT)
    return python


class ChannelsRabbitmqPeer:
    """`async with ChannelsRabbitmqPeer(python, url, log) as theirs`: a channels-rabbitmq layer
    in another process, with the layer methods the test needs."""

    def __init__(self, python: Path, url: str, log: Path) -> None:
        self.python, self.url, self.log = python, url, log
        self.versions: dict[str, str] = {}
        self._process: asyncio.subprocess.Process | None = None

    async def __aenter__(self) -> ChannelsRabbitmqPeer:
        with self.log.open("wb") as stderr:
            self._process = await asyncio.create_subprocess_exec(
                str(self.python), "-I", __file__, self.url,
                stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE, stderr=stderr)
        self.versions = (await self._reply(REPLY_TIMEOUT))["ready"]
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        process = self._process
        assert process is not None and process.stdin is not None
        process.stdin.close()  # end of commands: the peer closes its layer and exits
        try:
            await asyncio.wait_for(process.wait(), REPLY_TIMEOUT)
        except TimeoutError:
            process.kill()
            await process.wait()

    async def new_channel(self) -> str:
        return await self._call("new_channel")

    async def group_add(self, group: str, channel: str) -> None:
        await self._call("group_add", group=group, channel=channel)

    async def group_send(self, group: str, message: dict[str, Any]) -> None:
        await self._call("group_send", group=group, message=message)

    async def send(self, channel: str, message: dict[str, Any]) -> None:
        await self._call("send", channel=channel, message=message)

    async def receive(self, channel: str, timeout: float) -> dict[str, Any]:
        return await self._call("receive", channel=channel, timeout=timeout)

    async def _call(self, op: str, **arguments: Any) -> Any:
        process = self._process
        assert process is not None and process.stdin is not None
        process.stdin.write(json.dumps({"op": op, **arguments}).encode() + b"\n")
        await process.stdin.drain()
        reply = await self._reply(REPLY_TIMEOUT + float(arguments.get("timeout", 0)))
        if "error" in reply:
            raise AssertionError(f"channels-rabbitmq peer, {op}: {reply['error']}\n{self._stderr()}")
        return reply["result"]

    async def _reply(self, timeout: float) -> dict[str, Any]:
        assert self._process is not None and self._process.stdout is not None
        line = await asyncio.wait_for(self._process.stdout.readline(), timeout)
        if not line:
            raise AssertionError(f"the channels-rabbitmq peer exited:\n{self._stderr()}")
        return json.loads(line)

    def _stderr(self) -> str:
        return self.log.read_text(errors="replace")[-4000:]


# -- the peer process ------------------------------------------------------------------------


async def _serve(url: str) -> None:
    from importlib.metadata import version

    from channels_rabbitmq.core import RabbitmqChannelLayer

    def answer(reply: dict[str, Any]) -> None:
        sys.stdout.write(json.dumps(reply) + "\n")
        sys.stdout.flush()

    layer = RabbitmqChannelLayer(host=url)
    answer({"ready": {name: version(name) for name in ("channels-rabbitmq", "carehare", "pamqp", "channels")}})
    loop = asyncio.get_running_loop()
    try:
        # Read stdin in a thread, so the layer's reader keeps running between commands.
        while line := await loop.run_in_executor(None, sys.stdin.readline):
            command = json.loads(line)
            try:
                answer({"result": await _run(layer, command)})
            except Exception as exc:  # reported to the test, which fails with it
                answer({"error": f"{type(exc).__name__}: {exc}"})
    finally:
        await layer.close()


async def _run(layer: Any, command: dict[str, Any]) -> Any:
    op = command["op"]
    if op == "new_channel":
        return await layer.new_channel()
    if op == "group_add":
        return await layer.group_add(command["group"], command["channel"])
    if op == "group_send":
        return await layer.group_send(command["group"], command["message"])
    if op == "send":
        return await layer.send(command["channel"], command["message"])
    if op == "receive":
        return await asyncio.wait_for(layer.receive(command["channel"]), command["timeout"])
    raise ValueError(f"unknown command {op!r}")


if __name__ == "__main__":
    asyncio.run(_serve(sys.argv[1]))
