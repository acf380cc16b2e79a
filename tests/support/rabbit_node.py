"""A RabbitMQ node of the tests' own, for faults that a TCP proxy cannot make.

The shared broker on 5672 is never touched: this node has its own name, AMQP and
distribution ports (probed free), data, log and plugins directories, and Erlang cookie (its
own HOME), and every `rabbitmqctl` call names it with `-n`. The tests stop and start its
application, kill its Erlang VM with SIGKILL and start it again, delete its queues, and
raise memory alarms on it.

Started once per test session (about 4 to 10 s); `ensure_healthy()` puts it back after a
test that broke it.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import time
import uuid
from pathlib import Path

from tests.support.server import free_port

RABBIT_BIN = Path("/usr/lib/rabbitmq/bin")  # the Debian package's scripts, without its su wrapper


def _script(name: str) -> str:
    local = RABBIT_BIN / name
    if local.exists():
        return str(local)
    found = shutil.which(name)
    if found is None:
        raise RuntimeError(f"{name} is not installed: the broker-fault tests need a RabbitMQ installation")
    return found


class RabbitNode:
    def __init__(self, base: Path) -> None:
        self.base = base
        self.name = f"gqlc-test-{uuid.uuid4().hex[:8]}@localhost"
        self.port = free_port()
        self.dist_port = free_port()
        self.proc: subprocess.Popen[bytes] | None = None
        for sub in ("mnesia", "log", "home"):
            (base / sub).mkdir(parents=True, exist_ok=True)
        (base / "enabled_plugins").write_text("[].\n")
        (base / "rabbitmq-env.conf").write_text("")  # not /etc/rabbitmq's, which names the shared node
        (base / "rabbitmq.conf").write_text(
            f"listeners.tcp.1 = 127.0.0.1:{self.port}\n"
            "log.console = false\n"
            "log.file.level = warning\n"
        )

    def url(self, user: str = "guest", password: str = "guest", query: str = "") -> str:
        return f"amqp://{user}:{password}@127.0.0.1:{self.port}/" + (f"?{query}" if query else "")

    @property
    def env(self) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith(("RABBITMQ_", "ERL_"))}
        env.update(
            HOME=str(self.base / "home"),  # the node's and rabbitmqctl's own Erlang cookie
            RABBITMQ_NODENAME=self.name,
            RABBITMQ_NODE_IP_ADDRESS="127.0.0.1",
            RABBITMQ_NODE_PORT=str(self.port),
            RABBITMQ_DIST_PORT=str(self.dist_port),
            RABBITMQ_CONF_ENV_FILE=str(self.base / "rabbitmq-env.conf"),
            RABBITMQ_CONFIG_FILE=str(self.base / "rabbitmq.conf"),
            RABBITMQ_MNESIA_BASE=str(self.base / "mnesia"),
            RABBITMQ_LOG_BASE=str(self.base / "log"),
            RABBITMQ_ENABLED_PLUGINS_FILE=str(self.base / "enabled_plugins"),
            RABBITMQ_PLUGINS_EXPAND_DIR=str(self.base / "plugins-expand"),
            RABBITMQ_PID_FILE=str(self.base / "node.pid"),
            RABBITMQ_SERVER_ADDITIONAL_ERL_ARGS="-kernel inet_dist_use_interface {127,0,0,1}",
            ERL_EPMD_ADDRESS="127.0.0.1",
        )
        return env

    # -- the node's life -----------------------------------------------------------------

    def start(self, timeout: float = 90) -> RabbitNode:
        self.proc = subprocess.Popen(
            [_script("rabbitmq-server")], env=self.env, cwd=self.base,
            stdout=open(self.base / "server.out", "ab"), stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        self.wait_for_amqp(timeout)
        return self

    def wait_for_amqp(self, timeout: float = 90) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc is not None and self.proc.poll() is not None:
                raise RuntimeError(f"the test RabbitMQ node exited:\n{self.startup_log()}")
            if self.accepts_connections():
                self.ctl("await_startup", timeout=timeout)
                return
            time.sleep(0.1)
        raise RuntimeError(f"the test RabbitMQ node did not listen within {timeout} s:\n{self.startup_log()}")

    def accepts_connections(self) -> bool:
        try:
            socket.create_connection(("127.0.0.1", self.port), timeout=1).close()
        except OSError:
            return False
        return True

    def startup_log(self) -> str:
        path = self.base / "server.out"
        return path.read_text(errors="replace")[-3000:] if path.exists() else ""

    @property
    def os_pid(self) -> int:
        return int((self.base / "node.pid").read_text().strip())

    def kill(self) -> None:
        """SIGKILL the Erlang VM: no goodbye to any client, as in a crash or an OOM kill."""
        os.kill(self.os_pid, signal.SIGKILL)
        if self.proc is not None:
            self.proc.wait(30)
        deadline = time.monotonic() + 30
        while self.accepts_connections():
            assert time.monotonic() < deadline, "the killed node still accepts connections"
            time.sleep(0.05)

    def stop(self) -> None:
        if self.proc is None:
            return
        if self.proc.poll() is None:
            try:
                self.ctl("stop", timeout=60)
                self.proc.wait(60)
            except (subprocess.SubprocessError, RuntimeError):
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(10)
        self.proc = None

    # -- control --------------------------------------------------------------------------

    def ctl(self, *args: str, timeout: float = 60) -> str:
        """rabbitmqctl, always with -n naming this node."""
        done = subprocess.run([_script("rabbitmqctl"), "-n", self.name, "-q", *args], env=self.env,
                              capture_output=True, text=True, timeout=timeout)
        if done.returncode != 0:
            raise RuntimeError(f"rabbitmqctl {' '.join(args)} failed ({done.returncode}): "
                               f"{done.stdout}{done.stderr}")
        return done.stdout

    def queues(self) -> dict[str, int]:
        """Queue name -> number of consumers."""
        out = self.ctl("list_queues", "name", "consumers", "--no-table-headers")
        return {name: int(consumers) for name, consumers in (line.split() for line in out.splitlines() if line.strip())}

    def delete_queue(self, name: str) -> None:
        self.ctl("delete_queue", name)

    def block_publishers(self) -> None:
        """A memory alarm: the broker blocks every connection that publishes."""
        self.ctl("set_vm_memory_high_watermark", "0")

    def unblock_publishers(self) -> None:
        self.ctl("set_vm_memory_high_watermark", "0.4")

    def ensure_healthy(self) -> None:
        """Undo whatever the last test did: running, application started, no alarm."""
        if self.proc is None or self.proc.poll() is not None or not _node_process_alive(self):
            self.start()
            return
        if not self.accepts_connections():
            self.ctl("start_app")
            self.wait_for_amqp()
        self.unblock_publishers()


def _node_process_alive(node: RabbitNode) -> bool:
    try:
        os.kill(node.os_pid, 0)
    except (OSError, ValueError):
        return False
    return True
