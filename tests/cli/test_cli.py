"""The command line as a user meets it: bad input gets one clear line and a non-zero exit."""

from __future__ import annotations

import socket
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
        the_answer = 42
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
        ("factory:not_a_schema", ["is a dict ({'query': 'nope'}), not a strawberry.Schema"]),
        ("factory:the_answer", ["'factory:the_answer' is an int (42), not a strawberry.Schema"]),
    ],
)
@pytest.mark.parametrize("command", ["serve", "check", "export-schema"])
def test_bad_app_is_one_line(app_dir: Path, command: str, app: str, fragments: list[str]) -> None:
    result = run_cli(command, app, "--app-dir", str(app_dir))
    assert_one_line_error(result, *fragments)


def test_traceback_only_at_debug(app_dir: Path) -> None:
    result = run_cli("serve", "broken:schema", "--app-dir", str(app_dir))
    assert_one_line_error(result, "Run with --log-level debug for the traceback.")
    result = run_cli("serve", "broken:schema", "--app-dir", str(app_dir), "--log-level", "debug")
    assert result.returncode == 1
    assert "Traceback" in result.stderr and "database password missing" in result.stderr
    # Already debugging: no advice to do so.
    assert "--log-level debug" not in result.stderr, result.stderr


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
    assert_one_line_error(result, "WEB_CONCURRENCY=3 (--workers) with the memory:// layer")


@pytest.mark.parametrize(("args", "fragment"), [
    (["--path", "graphql"], "must start with '/'"),
    (["--path", "/healthz"], "taken by the server's own endpoint"),
    (["--workers", "0"], "must be at least 1"),
    (["--port", "70000"], "not a TCP port"),
    (["--header-timeout", "0"], "--header-timeout 0.0 must be greater than 0"),
    (["--max-connections", "0"], "--max-connections 0 must be at least 1"),
])
def test_bad_options(args: list[str], fragment: str) -> None:
    assert_one_line_error(run_cli("serve", CHAT_APP, *args), fragment)


@pytest.mark.parametrize(("command", "variables", "fragment"), [
    ("serve", {"GQLCHANNELS_WORKERS": "2"}, "GQLCHANNELS_WORKERS=2 (--workers) with the memory:// layer"),
    ("serve", {"GQLCHANNELS_PORT": "70000"}, "GQLCHANNELS_PORT=70000 (--port) is not a TCP port"),
    ("serve", {"GQLCHANNELS_PATH": "graphql"}, "GQLCHANNELS_PATH=graphql (--path) must start with '/'"),
    ("serve", {"GQLCHANNELS_MAX_DEPTH": "0"}, "GQLCHANNELS_MAX_DEPTH=0 (--max-depth) must be greater than 0"),
    ("serve", {"GQLCHANNELS_LAYER_URL": "nats://x"}, "layer URL 'nats://x' (from GQLCHANNELS_LAYER_URL) has an unknown scheme"),
    ("check", {"GQLCHANNELS_LAYER_URL": "amqp://u:s3cret@:5672/"}, "(from GQLCHANNELS_LAYER_URL) has no host"),
    ("serve", {"GQLCHANNELS_RELOAD": "1", "WEB_CONCURRENCY": "2", "GQLCHANNELS_LAYER_URL": "amqp://rabbit/"},
     "(--workers is set by WEB_CONCURRENCY=2; --reload is set by GQLCHANNELS_RELOAD=1)"),
])
def test_error_in_environment_value_names_the_variable(command: str, variables: dict[str, str], fragment: str) -> None:
    result = run_cli(command, CHAT_APP, env=clean_env(**variables))
    assert_one_line_error(result, fragment)
    assert "s3cret" not in result.stderr


def test_error_in_environment_app_names_the_variable() -> None:
    result = run_cli("export-schema", env=clean_env(GQLCHANNELS_APP="nosuchmodule:schema"))
    assert_one_line_error(result, "(from GQLCHANNELS_APP=nosuchmodule:schema (APP))")


@pytest.mark.parametrize(("command", "variable", "value", "flag"), [
    ("serve", "GQLCHANNELS_WORKERS", "abc", "--workers"),
    ("serve", "GQLCHANNELS_LOG_FORMAT", "xml", "--log-format"),
    ("check", "GQLCHANNELS_LOG_LEVEL", "loud", "--log-level"),
])
def test_unparsable_environment_value_names_the_variable(command: str, variable: str, value: str, flag: str) -> None:
    result = run_cli(command, CHAT_APP, env=clean_env(**{variable: value}))
    assert result.returncode == 2, result.stderr
    assert f"Error: Invalid value for {variable} ({flag}): '{value}'" in result.stderr
    # The same value typed as the flag is named as the flag, without the variables.
    result = run_cli(command, CHAT_APP, flag, value)
    assert f"Error: Invalid value for '{flag}': '{value}'" in result.stderr
    assert variable not in result.stderr


def test_missing_app_names_its_variable() -> None:
    assert "Missing argument 'APP' (or set GQLCHANNELS_APP)" in run_cli("serve").stderr


def test_environment_naming_covers_any_option() -> None:
    """An option none of our commands has today is named by its variable all the same."""
    import click
    from click.testing import CliRunner

    from gqlchannels.cli.commands import CommandGroup, reports_errors
    from gqlchannels.errors import ConfigError

    @click.group(cls=CommandGroup)
    def cli() -> None: ...

    @cli.command()
    @click.option("--max-fields", envvar="GQLCHANNELS_MAX_FIELDS", type=int, default=100)
    @reports_errors
    def serve(max_fields: int) -> None:
        raise ConfigError(f"--max-fields {max_fields} must be greater than 0.")

    result = CliRunner().invoke(cli, ["serve"], env={"GQLCHANNELS_MAX_FIELDS": "0"})
    assert result.output.strip() == "Error: GQLCHANNELS_MAX_FIELDS=0 (--max-fields) must be greater than 0."
    result = CliRunner().invoke(cli, ["serve", "--max-fields", "0"], env={"GQLCHANNELS_MAX_FIELDS": "5"})
    assert result.output.strip() == "Error: --max-fields 0 must be greater than 0."
    result = CliRunner().invoke(cli, ["serve"], env={"GQLCHANNELS_MAX_FIELDS": "many"})
    assert "Invalid value for GQLCHANNELS_MAX_FIELDS (--max-fields): 'many'" in result.output
    assert "[env var: GQLCHANNELS_MAX_FIELDS]" in CliRunner().invoke(cli, ["serve", "--help"]).output


def test_help_names_every_environment_variable() -> None:
    from gqlchannels.cli.commands import main

    for name, command in main.commands.items():
        help_text = run_cli(name, "--help").stdout
        for param in command.params:
            variables = [param.envvar] if isinstance(param.envvar, str) else param.envvar or []
            for variable in variables:
                assert variable in help_text, f"gqlchannels {name} --help does not name {variable}"
    serve_help = " ".join(run_cli("serve", "--help").stdout.split())  # unwrapped
    assert "[env var: GQLCHANNELS_WORKERS, WEB_CONCURRENCY; default: 1]" in serve_help
    assert "APP may also be set with GQLCHANNELS_APP" in serve_help


def listening_socket() -> socket.socket:
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen()
    return sock


@pytest.mark.parametrize("extra", [[], ["--reload"]])
def test_busy_port_is_one_line_before_anything_starts(extra: list[str]) -> None:
    with listening_socket() as taken:
        port = taken.getsockname()[1]
        result = run_cli("serve", CHAT_APP, "--port", str(port), *extra)
        assert_one_line_error(result, f"--port {port} on 127.0.0.1: the address is already in use",
                              "--port or GQLCHANNELS_PORT")
        assert result.stdout == ""
        result = run_cli("serve", CHAT_APP, env=clean_env(GQLCHANNELS_PORT=str(port)))
        assert_one_line_error(result, f"GQLCHANNELS_PORT={port} (--port) on 127.0.0.1: the address is already in use")


def time_wait_on(port: int) -> bool:
    """Whether a TCP connection from this local port is in TIME_WAIT (Linux /proc/net/tcp)."""
    rows = Path("/proc/net/tcp").read_text().splitlines()[1:]
    return any(int(row.split()[1].split(":")[1], 16) == port and row.split()[3] == "06" for row in rows)


def test_port_left_in_time_wait_is_free() -> None:
    """The check binds as uvicorn does (SO_REUSEADDR): a restarted server whose old
    connections linger in TIME_WAIT is not told its port is in use."""
    port = free_port()
    with httpx.Client() as client:
        with ServerProcess(CHAT_APP, port=port) as server:
            assert client.get(f"{server.url}/healthz").status_code == 200  # kept alive...
        # ...until the server, stopping, closed it first: TIME_WAIT is on the server's port.
    assert time_wait_on(port)
    with ServerProcess(CHAT_APP, port=port) as server:
        assert graphql_post(server.url, "{ hello }") == {"data": {"hello": "Hello, world!"}}


def test_reload_into_a_broken_module_is_one_line(tmp_path: Path) -> None:
    module = tmp_path / "live.py"
    module.write_text(textwrap.dedent("""
        import strawberry

        @strawberry.type
        class Query:
            @strawberry.field
            def version(self) -> int:
                return 1

        schema = strawberry.Schema(query=Query)
    """))
    working = module.read_text()
    with ServerProcess("live:schema", "--reload", "--app-dir", str(tmp_path), cwd=tmp_path) as server:
        module.write_text("def broken(:\n")
        expected = "could not load live:schema: importing 'live' raised SyntaxError"
        deadline = time.monotonic() + 30
        while expected not in server.log() and time.monotonic() < deadline:
            time.sleep(0.2)
        log = server.log()
        assert expected in log, log
        assert "Traceback" not in log, log
        assert [line for line in log.splitlines() if "SyntaxError" in line] == [
            next(line for line in log.splitlines() if expected in line)]
        module.write_text(working)  # fixed: the reloader starts it again
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                if httpx.post(f"{server.url}/graphql", json={"query": "{ version }"}, timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                time.sleep(0.2)
        assert graphql_post(server.url, "{ version }") == {"data": {"version": 1}}


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
