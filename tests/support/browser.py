"""Headless Chromium driven over the DevTools protocol (with the websockets client the tests
already use), recording every request a page makes."""

from __future__ import annotations

import asyncio
import itertools
import json
import os
import shutil
import subprocess
import tempfile
from typing import Any

import httpx
from websockets.asyncio.client import connect

CHROMIUM_FLAGS = [
    "--headless=new", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
    "--disable-default-apps", "--remote-debugging-port=0",
]


def chromium_path() -> str | None:
    return shutil.which("chromium") or shutil.which("chromium-browser") or shutil.which("google-chrome")


class Browser:
    """One Chromium process with one page. Use `async with Browser() as page:`."""

    def __init__(self) -> None:
        self.profile = tempfile.mkdtemp(prefix="gqlchannels-chromium-")
        self.proc: subprocess.Popen[str] | None = None
        self.requests: list[str] = []
        self._ids = itertools.count(1)
        self._pending: dict[int, asyncio.Future[dict[str, Any]]] = {}
        self._events: list[dict[str, Any]] = []
        self._reader: asyncio.Task[None] | None = None

    async def __aenter__(self) -> Browser:
        executable = chromium_path()
        assert executable, "Chromium is needed for the IDE test: apt-get install chromium"
        self.proc = subprocess.Popen([executable, *CHROMIUM_FLAGS, f"--user-data-dir={self.profile}", "about:blank"],
                                     stderr=subprocess.PIPE, stdout=subprocess.DEVNULL, text=True)
        port_file = os.path.join(self.profile, "DevToolsActivePort")
        for _ in range(200):  # Chromium writes its debugging port here once it listens
            if os.path.exists(port_file) and open(port_file).read().strip():
                break
            await asyncio.sleep(0.05)
        port = open(port_file).read().split()[0]
        async with httpx.AsyncClient() as client:
            targets = (await client.get(f"http://127.0.0.1:{port}/json/list")).json()
        page = next(t for t in targets if t["type"] == "page")
        self.ws = await connect(page["webSocketDebuggerUrl"], max_size=None)
        self._reader = asyncio.create_task(self._read())
        await self.call("Network.enable")
        await self.call("Page.enable")
        await self.call("Runtime.enable")
        return self

    async def _read(self) -> None:
        async for raw in self.ws:
            message = json.loads(raw)
            if "id" in message and message["id"] in self._pending:
                self._pending.pop(message["id"]).set_result(message)
            elif message.get("method") == "Network.requestWillBeSent":
                self.requests.append(message["params"]["request"]["url"])
            elif message.get("method") == "Network.webSocketCreated":
                self.requests.append(message["params"]["url"])
            else:
                self._events.append(message)

    async def call(self, method: str, **params: Any) -> dict[str, Any]:
        ident = next(self._ids)
        self._pending[ident] = asyncio.get_running_loop().create_future()
        await self.ws.send(json.dumps({"id": ident, "method": method, "params": params}))
        reply = await asyncio.wait_for(self._pending[ident], 30)
        assert "error" not in reply, reply
        return reply["result"]

    async def evaluate(self, expression: str) -> Any:
        result = await self.call("Runtime.evaluate", expression=expression, returnByValue=True, awaitPromise=True)
        return result["result"].get("value")

    async def goto(self, url: str) -> None:
        await self.call("Page.navigate", url=url)

    async def wait_for(self, expression: str, timeout: float = 20) -> Any:
        """Poll a JavaScript expression until it is truthy; return its value."""
        deadline = asyncio.get_running_loop().time() + timeout
        while True:
            value = await self.evaluate(expression)
            if value:
                return value
            if asyncio.get_running_loop().time() >= deadline:
                page = await self.evaluate("document.body ? document.body.innerText.slice(0, 2000) : ''")
                raise AssertionError(f"timed out waiting for: {expression}\nthe page showed: {page!r}")
            await asyncio.sleep(0.1)

    async def __aexit__(self, *exc: object) -> None:
        if self._reader is not None:
            self._reader.cancel()
        try:
            await self.ws.close()
        except Exception:
            pass
        if self.proc is not None:
            self.proc.kill()
            self.proc.wait(10)
        shutil.rmtree(self.profile, ignore_errors=True)
