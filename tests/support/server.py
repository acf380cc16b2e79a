"""Start the real `gqlchannels serve` in a subprocess on a free port and wait until it serves."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx

AMQP_URL = os.environ.get("GQLCHANNELS_TEST_AMQP_URL", "amqp://guest:guest@127.0.0.1:5672/")
CHAT_APP = "gqlchannels.examples.chat:schema"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


# CI runs the whole suite a second time with this set to 0 (.ci/run): it reaches every server.
PASSED_THROUGH = {"GQLCHANNELS_FAST_PATHS"}


def clean_env(**extra: str) -> dict[str, str]:
    """The test process's environment without any GQLCHANNELS_* that could leak in."""
    env = {k: v for k, v in os.environ.items()
           if (not k.startswith("GQLCHANNELS_") or k in PASSED_THROUGH) and k != "WEB_CONCURRENCY"}
    env.update(extra)
    return env


def run_cli(*args: str, env: dict[str, str] | None = None, cwd: Path | None = None,
            timeout: float = 60, python: str = sys.executable) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [python, "-m", "gqlchannels", *args],
        capture_output=True, text=True, timeout=timeout, env=env or clean_env(), cwd=cwd,
    )


class ServerProcess:
    """One `gqlchannels serve` process (or another server `command`). Use as a context manager."""

    def __init__(self, *args: str, port: int | None = None, env: dict[str, str] | None = None,
                 cwd: Path | None = None, pass_port: bool = True,
                 command: tuple[str, ...] = ("-m", "gqlchannels", "serve"),
                 ready_path: str = "/readyz", executable: str = sys.executable) -> None:
        self.port = port or free_port()
        self.args = list(args)
        if pass_port:
            self.args += ["--port", str(self.port)]
        self.command = command
        self.executable = executable
        self.ready_path = ready_path
        self.env = env or clean_env()
        self.cwd = cwd
        self.proc: subprocess.Popen[str] | None = None
        self.log_path: Path | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def ws_url(self) -> str:
        return f"ws://127.0.0.1:{self.port}/graphql"

    def start(self, ready_timeout: float = 20) -> ServerProcess:
        import tempfile

        fd, name = tempfile.mkstemp(prefix="gqlchannels-server-", suffix=".log")
        self.log_path = Path(name)
        self.proc = subprocess.Popen(
            [self.executable, *self.command, *self.args],
            stdout=fd, stderr=subprocess.STDOUT, text=True, env=self.env, cwd=self.cwd,
            start_new_session=True,
        )
        os.close(fd)
        deadline = time.monotonic() + ready_timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"server exited with {self.proc.returncode}:\n{self.log()}")
            try:
                if httpx.get(f"{self.url}{self.ready_path}", timeout=1).status_code == 200:
                    return self
            except httpx.HTTPError:
                pass
            time.sleep(0.1)
        self.stop()
        raise RuntimeError(f"server not ready within {ready_timeout} s:\n{self.log()}")

    def log(self) -> str:
        return self.log_path.read_text() if self.log_path and self.log_path.exists() else ""

    def stop(self, timeout: float = 15) -> int | None:
        if self.proc is None or self.proc.poll() is not None:
            return self.proc.returncode if self.proc else None
        os.killpg(self.proc.pid, signal.SIGTERM)  # the group: workers and reloader children too
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            os.killpg(self.proc.pid, signal.SIGKILL)
            return self.proc.wait(5)

    def __enter__(self) -> ServerProcess:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

def metric(server: ServerProcess, name: str, **labels: str) -> float:
    """One sample's value from /metrics (0 when the series does not exist yet)."""
    text = httpx.get(f"{server.url}/metrics", timeout=10).text
    wanted = name + ("{" + ",".join(f'{k}="{v}"' for k, v in sorted(labels.items())) + "}" if labels else "")
    for line in text.splitlines():
        if not line.startswith("#"):
            series, _, value = line.rpartition(" ")
            if series == wanted:
                return float(value)
    return 0.0
