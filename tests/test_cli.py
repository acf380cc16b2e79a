"""The command line as a user meets it: bad input gets one clear line and a non-zero exit."""

from __future__ import annotations

import textwrap
import time
from pathlib import Path

import httpx
import pytest

from tests.support.gql_clients import graphql_post
from tests.support.server import CHAT_APP, ServerProcess, clean_env, free_port, run_cli


def assert_one_line_error(result, *fragments: str) -> None:  # noqa: ANN001
    assert result.returncode == 1, (result.returncode, result.stdout, result.stderr)
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr  # no traceback
    assert lines[0].startswith("Error: ")
    for fragment in fragments:
        assert fragment in lines[0], lines[0]


@pytest.fixture()
def app_dir(tmp_path: Path) -> Path:
    (tmp_path / "broken.py").write_text("raise RuntimeError('database password missing')\n")
    (tmp_path / "needs_missing.py").write_text("import definitely_not_installed_pkg\n")
    (tmp_path / "factory.py").write_text(textwrap.dedent("""
        import strawberry

        @strawberry.type
        class Query:
            answer: int = 42

        def make_schema():
            return strawberry.Schema(query=Query)

        not_a_schema = {"query": "nope"}
    """))
    return tmp_path


@pytest.mark.parametrize(
    ("app", "fragments"),
    [
        ("nosuchmodule:schema", ["no module named 'nosuchmodule'", "--app-dir"]),
        ("gqlchannels.examples.chat:nope", ["has no attribute 'nope'"]),
        ("gqlchannels.examples.chat", ["must look like 'package.module:attribute'"]),
        ("broken:schema", ["importing 'broken' raised RuntimeError: database password missing"]),
        ("needs_missing:schema", ["importing 'needs_missing' failed", "definitely_not_installed_pkg"]),
        ("factory:not_a_schema", ["is a dict, not a strawberry.Schema"]),
    ],
)
@pytest.mark.parametrize("command", ["serve", "check", "export-schema"])
def test_bad_app_is_one_line(app_dir: Path, command: str, app: str, fragments: list[str]) -> None:
    result = run_cli(command, app, "--app-dir", str(app_dir))
    assert_one_line_error(result, *fragments)


def test_traceback_only_at_debug(app_dir: Path) -> None:
    result = run_cli("serve", "broken:schema", "--app-dir", str(app_dir), "--log-level", "debug")
    assert result.returncode == 1
    assert "Traceback" in result.stderr and "database password missing" in result.stderr


def test_factory_callable_and_app_dir(app_dir: Path) -> None:
    result = run_cli("export-schema", "factory:make_schema", "--app-dir", str(app_dir))
    assert result.returncode == 0, result.stderr
    assert "answer: Int!" in result.stdout


def test_export_schema_prints_seed_names() -> None:
    result = run_cli("export-schema", CHAT_APP)
    assert result.returncode == 0
    assert "sendChatMessage(room: ChatRoom!, message: String!): Boolean!" in result.stdout
    assert "joinChatRooms(rooms: [ChatRoom!]!): ChatRoomMessage!" in result.stdout
    assert "input ChatRoom {\n  id: String!\n}" in result.stdout


@pytest.mark.parametrize(
    ("layer", "fragments"),
    [
        ("redis://localhost:6379", ["unknown scheme 'redis'", "memory://", "amqp://"]),
        ("amqp://guest:s3cret@:5672/", ["has no host"]),
        ("amqp://guest:s3cret@localhost:notaport/", ["malformed"]),
        ("amqp://guest:s3cret@localhost/?local_capacity=lots", ["local_capacity='lots' must be an integer"]),
        ("amqp://guest:s3cret@localhost/?capacityy=5", ["unknown option 'capacityy'"]),
        ("memory://somehost", ["memory:// takes no host"]),
    ],
)
def test_bad_layer_url_is_one_line_and_masks_password(layer: str, fragments: list[str]) -> None:
    result = run_cli("serve", CHAT_APP, "--layer", layer)
    assert_one_line_error(result, *fragments)
    assert "s3cret" not in result.stderr


def test_bad_layer_url_from_environment() -> None:
    result = run_cli("serve", CHAT_APP, env=clean_env(GQLCHANNELS_LAYER_URL="nats://x"))
    assert_one_line_error(result, "unknown scheme 'nats'")


def test_workers_with_memory_layer_refused() -> None:
    result = run_cli("serve", CHAT_APP, "--workers", "2")
    assert_one_line_error(result, "--workers 2 with the memory:// layer", "amqp://")
    result = run_cli("serve", CHAT_APP, env=clean_env(WEB_CONCURRENCY="3"))
    assert_one_line_error(result, "--workers 3 with the memory:// layer")


@pytest.mark.parametrize(("args", "fragment"), [
    (["--path", "graphql"], "must start with '/'"),
    (["--path", "/healthz"], "taken by the server's own endpoint"),
    (["--workers", "0"], "must be at least 1"),
    (["--port", "70000"], "not a TCP port"),
])
def test_bad_options(args: list[str], fragment: str) -> None:
    assert_one_line_error(run_cli("serve", CHAT_APP, *args), fragment)


def test_environment_configures_and_flags_win() -> None:
    flag_port, env_port = free_port(), free_port()
    env = clean_env(GQLCHANNELS_APP=CHAT_APP, GQLCHANNELS_PORT=str(env_port), GQLCHANNELS_PATH="/gql")
    # APP and path from the environment, port from the flag (which wins over the variable).
    with ServerProcess(port=flag_port, env=env) as server:
        assert graphql_post(server.url, "{ hello }", path="/gql")["data"]["hello"] == "Hello, world!"
        with pytest.raises(httpx.ConnectError):
            httpx.get(f"http://127.0.0.1:{env_port}/healthz")


def test_check_with_memory_layer() -> None:
    result = run_cli("check", CHAT_APP)
    assert result.returncode == 0, result.stderr
    assert "1 query field, 1 mutation field, 1 subscription field" in result.stdout
    assert "memory://: a message went round in" in result.stdout


def test_check_with_rabbitmq(amqp_url: str) -> None:
    result = run_cli("check", CHAT_APP, "--layer", amqp_url)
    assert result.returncode == 0, result.stderr
    assert "a message went round in" in result.stdout
    assert "guest:***@" in result.stdout


def test_check_with_unreachable_broker_fails_in_bounded_time() -> None:
    port = free_port()  # nothing listens there
    result = run_cli("check", CHAT_APP, "--layer", f"amqp://guest:s3cret@127.0.0.1:{port}/",
                     "--timeout", "2", timeout=30)
    assert_one_line_error(result)
    assert "s3cret" not in result.stderr + result.stdout


def test_reload_picks_up_a_changed_schema(tmp_path: Path) -> None:
    module = tmp_path / "live.py"
    source = textwrap.dedent("""
        import strawberry

        @strawberry.type
        class Query:
            @strawberry.field
            def version(self) -> int:
                return {version}

        schema = strawberry.Schema(query=Query)
    """)
    module.write_text(source.format(version=1))
    with ServerProcess("live:schema", "--reload", "--app-dir", str(tmp_path), cwd=tmp_path) as server:
        assert graphql_post(server.url, "{ version }") == {"data": {"version": 1}}
        module.write_text(source.format(version=2))
        deadline = time.monotonic() + 30
        seen = None
        while time.monotonic() < deadline:  # the reloader restarts the worker; bounded wait
            try:
                seen = httpx.post(f"{server.url}/graphql", json={"query": "{ version }"}, timeout=2).json()
            except httpx.HTTPError:
                seen = None
            if seen == {"data": {"version": 2}}:
                break
            time.sleep(0.2)
        assert seen == {"data": {"version": 2}}
