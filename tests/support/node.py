"""The npm packages of tests/spec (reference clients, the GraphQL over HTTP audit), run with Node."""

from __future__ import annotations

import fcntl
import json
import shutil
import subprocess
from pathlib import Path

SPEC = Path(__file__).parent.parent / "spec"


def spec_packages_installed() -> bool:
    """Whether node_modules holds every package of package.json at its pinned version (a
    checkout whose node_modules predates a new package gets `npm ci` again)."""
    wanted = json.loads((SPEC / "package.json").read_text())["dependencies"]
    for name, version in wanted.items():
        installed = SPEC / "node_modules" / name / "package.json"
        if not installed.exists() or json.loads(installed.read_text()).get("version") != version:
            return False
    return True


def node_with_spec_packages() -> str:
    """Node, after `npm ci` if the packages are missing; raises with the reason otherwise."""
    node, npm = shutil.which("node"), shutil.which("npm")
    if node is None or npm is None:
        raise RuntimeError("Node.js and npm are needed for the tests that run npm clients; install them")
    # One install at a time: two test runs in one checkout (two Python versions side by side)
    # would otherwise both run `npm ci` into the same node_modules and mix their files.
    with open(SPEC / ".npm-ci.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not spec_packages_installed():
            result = subprocess.run([npm, "ci", "--no-audit", "--no-fund"], cwd=SPEC, capture_output=True, text=True,
                                    timeout=300)
            if result.returncode != 0:
                raise RuntimeError(f"npm ci failed in {SPEC}:\n{result.stderr[-2000:]}")
    return node


def run_node(node: str, script: str, *args: str, timeout: float = 120) -> list[dict]:
    """Run tests/spec/SCRIPT with Node; its stdout is one JSON object per line."""
    result = subprocess.run([node, str(SPEC / script), *args], capture_output=True, text=True, timeout=timeout)
    assert result.returncode == 0, result.stdout + result.stderr
    return [json.loads(line) for line in result.stdout.splitlines()]
