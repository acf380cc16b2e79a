"""Run a user's pytest suite in a subprocess, as the user would: their conftest.py and test
modules in a directory of their own, gqlchannels installed (its pytest plugin loaded by pytest
itself), pytest-asyncio in the mode they chose."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from tests.support.server import clean_env

REPOSITORY = Path(__file__).resolve().parents[2]


def run_user_suite(directory: Path, asyncio_mode: str, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-o", f"asyncio_mode={asyncio_mode}",
         "-o", "asyncio_default_fixture_loop_scope=function", "-q", *args, str(directory)],
        capture_output=True, text=True, timeout=300, cwd=directory,
        env=clean_env(PYTHONPATH=str(REPOSITORY)),  # the tests' support schemas, for the suites that use them
    )
