"""gqlchannels' pytest plugin, as a user's suite meets it: loaded by pytest itself, one line of
conftest.py naming the app, the `gqlchannels_client` fixture under pytest-asyncio's auto and
strict modes."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from tests.support.server import clean_env
from tests.support.user_suite import run_user_suite

CONFTEST = """
from gqlchannels.testing import app_fixture

gqlchannels_app = app_fixture("tests.support.ops_schema:schema", auth="tests.support.ops_schema:auth")
"""

TESTS = """
import pytest

TOKEN = {"Authorization": "Bearer good-token"}


@pytest.mark.asyncio
async def test_the_conftest_app_with_its_options(gqlchannels_client):
    async with gqlchannels_client() as client:
        assert (await client.execute("{ whoami }", headers=TOKEN)).data == {"whoami": "alice"}
        assert (await client.execute("{ boom }", headers=TOKEN)).errors[0]["message"] == "Unexpected error."
        assert (await client.execute("{ whoami }")).status == 401


@pytest.mark.asyncio
async def test_options_given_here_win(gqlchannels_client):
    async with gqlchannels_client(debug=True) as client:
        assert "hunter2" in (await client.execute("{ boom }", headers=TOKEN)).errors[0]["message"]
        assert (await client.execute("{ whoami }")).status == 401  # the conftest's auth still applies


@pytest.mark.asyncio
async def test_another_schema(gqlchannels_client):
    async with gqlchannels_client("gqlchannels.examples.chat:schema") as client:
        assert (await client.execute("{ hello }")).data == {"hello": "Hello, world!"}
"""


def write_suite(directory: Path, conftest: str | None, tests: str) -> Path:
    if conftest is not None:
        (directory / "conftest.py").write_text(textwrap.dedent(conftest))
    (directory / "test_user.py").write_text(textwrap.dedent(tests))
    return directory


@pytest.mark.parametrize("mode", ["auto", "strict"])
def test_a_users_suite_needs_one_conftest_line(tmp_path: Path, mode: str) -> None:
    result = run_user_suite(write_suite(tmp_path, CONFTEST, TESTS), mode)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "3 passed" in result.stdout, result.stdout


def test_without_an_app_the_failure_says_what_to_write(tmp_path: Path) -> None:
    result = run_user_suite(write_suite(tmp_path, None, """
        async def test_no_app(gqlchannels_client):
            async with gqlchannels_client() as client:
                pass
    """), "auto")
    assert result.returncode == 1, result.stdout + result.stderr
    assert "add this line to conftest.py: gqlchannels_app = gqlchannels.testing.app_fixture(" in result.stdout


def test_loading_the_plugin_imports_nothing_of_gqlchannels() -> None:
    """pytest imports its plugins at every start; gqlchannels is imported when a test uses it."""
    result = subprocess.run(
        [sys.executable, "-c", "import sys, _gqlchannels_pytest_plugin; print(sorted(m for m in sys.modules "
                               "if m.split('.')[0] in ('gqlchannels', 'django', 'strawberry', 'channels')))"],
        capture_output=True, text=True, timeout=60, env=clean_env())
    assert result.stdout.strip() == "[]", result.stdout + result.stderr
