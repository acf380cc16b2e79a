"""The version gates around gqlchannels' overrides of its dependencies' internals."""

from __future__ import annotations

import ast
import logging
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from packaging.specifiers import SpecifierSet

from gqlchannels import overrides
from gqlchannels.overrides import Kind, installed_version


@pytest.fixture
def gate_registry() -> Iterator[dict[str, overrides.Override]]:
    """The registry, with whatever a test declares taken out again afterwards."""
    before = dict(overrides.REGISTRY)
    fast_paths = overrides._fast_paths
    yield overrides.REGISTRY
    overrides.REGISTRY.clear()
    overrides.REGISTRY.update(before)
    overrides.configure(fast_paths=fast_paths)


def test_an_override_outside_its_releases_is_off_and_says_so(
        gate_registry: dict, caplog: pytest.LogCaptureFixture) -> None:
    uvicorn = installed_version("uvicorn")
    too_new = overrides.override("too-new", Kind.FIX, {"uvicorn": "<0.1"}, stock="uvicorn's own code")
    written_for_it = overrides.override("in-range", Kind.FIX, {"uvicorn": f"=={uvicorn}"}, stock="-")
    assert not too_new.active and written_for_it.active
    with caplog.at_level(logging.INFO, logger="gqlchannels"):
        overrides.log_startup()
    lines = [record.getMessage() for record in caplog.records if "too-new" in record.getMessage()]
    assert lines == [f"too-new not used: written for uvicorn <0.1, installed uvicorn {uvicorn}; "
                     "uvicorn's own code serves instead"]
    assert not any("in-range" in record.getMessage() for record in caplog.records)


def test_a_package_that_is_not_installed_is_out_of_range(gate_registry: dict) -> None:
    gate = overrides.override("absent", Kind.FIX, {"no-such-distribution": ">=1"}, stock="-")
    assert gate.out_of_range() == ["no-such-distribution not installed"] and not gate.active


def test_no_fast_paths_turns_fast_paths_off_and_fixes_stay(
        gate_registry: dict, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch) -> None:
    fast = overrides.override("fast", Kind.FAST_PATH, {"python": ">=3"}, stock="-")
    fix = overrides.override("fix", Kind.FIX, {"python": ">=3"}, stock="-")
    overrides.configure(fast_paths=None)
    monkeypatch.setenv(overrides.FAST_PATHS_ENV, "0")
    assert not fast.active and fix.active
    monkeypatch.setenv(overrides.FAST_PATHS_ENV, "1")
    assert fast.active and fix.active
    overrides.configure(fast_paths=False)  # the flag wins over the variable
    assert not fast.active and fix.active
    with caplog.at_level(logging.INFO, logger="gqlchannels"):
        overrides.log_startup()
    assert any(record.getMessage().startswith("fast paths off") and "fast" in record.getMessage()
               for record in caplog.records)


OVERRIDES = Path(overrides.__file__).parent


def test_overrides_import_nothing_of_the_rest_of_gqlchannels() -> None:
    """The low layer: each override module imports the packages it overrides, and other
    modules of gqlchannels.overrides, never the modules above it."""
    offending = []
    for path in OVERRIDES.glob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and (node.level > 1 or (node.module or "").startswith("gqlchannels")):
                offending.append(f"{path.name}: from {'.' * node.level}{node.module or ''} import ...")
            elif isinstance(node, ast.Import) and any(alias.name.startswith("gqlchannels") for alias in node.names):
                offending.append(f"{path.name}: import {', '.join(alias.name for alias in node.names)}")
    assert offending == []


def test_every_override_module_declares_its_gates() -> None:
    overrides.declare_all()
    for path in OVERRIDES.glob("*.py"):
        if path.stem in ("__init__", "keepalive"):  # the gate itself; the WebSocket protocol's clock
            continue
        module = sys.modules[f"gqlchannels.overrides.{path.stem}"]
        assert any(isinstance(value, overrides.Override) for value in vars(module).values()), path.name
    for gate in overrides.REGISTRY.values():
        assert gate.written_for and all(SpecifierSet(specifier) for specifier in gate.written_for.values())
        assert gate.stock, gate.name


def test_every_override_is_written_for_the_releases_installed() -> None:
    """The rest of the suite tests the overrides in force; a dependency released since they
    were written turns them off, and this says which to review (diff the release, then widen
    the gate) rather than leaving tests of the fixes to fail one by one."""
    overrides.declare_all()
    outside = {gate.name: gate.out_of_range() for gate in overrides.REGISTRY.values() if gate.out_of_range()}
    assert outside == {}
