"""Every place where gqlchannels reaches into a dependency's internals, behind version gates.

A dependency's internals are what it does not promise to keep: names with a leading
underscore, methods its own code calls on itself that we replace, copies of its code that
we run instead of it, attributes we set on its objects. Reaching into them buys most of the
server's speed and memory per connection, and a few fixes no public hook allows, but a new
release may change them without notice. So each such reach lives in a module of this
package, and each names the releases of each package it was written for:

- When an installed release is outside that range, the override is not used: the package's
  own code serves instead, and the server says so in one line at startup, naming the
  package and its version.
- `--no-fast-paths` (GQLCHANNELS_FAST_PATHS=0) turns every override whose purpose is speed
  or memory off, for a user who suspects one of them: everything then runs through the
  packages' own code. The suite passes both ways, and CI runs it both ways.
- An override that fixes what a client or an operator would otherwise meet (a leak, a
  protocol the package serves wrongly, a protection the package has no hook for) is a
  "fix": only a version outside its range turns it off, since turning it off makes the
  server worse, not merely slower.
- GQLCHANNELS_OVERRIDES_OFF names overrides to turn off whatever their kind ("all" for
  every one): for ruling one out, and for the tests that run the stock code of fixes.

This package is a low layer: it imports the packages it overrides and nothing else of
gqlchannels, whose modules ask it for the fast or the stock implementation.
"""

from __future__ import annotations

import dataclasses
import enum
import functools
import importlib
import importlib.metadata
import logging
import os
import pkgutil
import platform
from collections.abc import Mapping

from packaging.specifiers import SpecifierSet
from packaging.version import InvalidVersion, Version

logger = logging.getLogger("gqlchannels")

FAST_PATHS_ENV = "GQLCHANNELS_FAST_PATHS"
OFF_ENV = "GQLCHANNELS_OVERRIDES_OFF"  # names (comma-separated) or "all": served by the packages' own code
_FALSE = frozenset({"0", "false", "no", "off"})


class Kind(enum.Enum):
    FAST_PATH = "fast path"  # speed or memory: --no-fast-paths turns it off
    FIX = "fix"  # what a client or operator would otherwise meet: only a version turns it off


@dataclasses.dataclass(frozen=True)
class Override:
    name: str  # as the startup line and the docs call it
    kind: Kind
    written_for: Mapping[str, str]  # distribution name -> the releases (PEP 440 specifier)
    stock: str  # what serves instead, in words

    def out_of_range(self) -> list[str]:
        """'uvicorn 0.56.0' for each installed package outside the releases written for."""
        return [f"{package} {installed}" for package, specifier in self.written_for.items()
                if not _in_range(installed := installed_version(package), specifier)]

    @property
    def active(self) -> bool:
        if self.kind is Kind.FAST_PATH and not fast_paths_enabled():
            return False
        if self.name in turned_off():
            return False
        return not self.out_of_range()

    def describe(self) -> str:
        ranges = ", ".join(f"{package} {specifier}" for package, specifier in self.written_for.items())
        return f"{self.name} ({self.kind.value}, written for {ranges})"


REGISTRY: dict[str, Override] = {}


def override(name: str, kind: Kind, written_for: Mapping[str, str], stock: str) -> Override:
    """Declare an override (once, where it is defined); returns its gate."""
    gate = Override(name, kind, dict(written_for), stock)
    REGISTRY[name] = gate
    return gate


@functools.cache
def installed_version(package: str) -> str:
    """The installed release of a distribution ("python": the interpreter's own)."""
    if package == "python":
        return platform.python_version()
    try:
        return importlib.metadata.version(package)
    except importlib.metadata.PackageNotFoundError:
        return "not installed"


def _in_range(installed: str, specifier: str) -> bool:
    try:
        return Version(installed) in SpecifierSet(specifier, prereleases=True)
    except InvalidVersion:
        return False


_fast_paths: bool | None = None


def configure(*, fast_paths: bool | None) -> None:
    """Set the process's choice (None: from GQLCHANNELS_FAST_PATHS, else on). Process-wide:
    some overrides (uvicorn's protocols, executor classes) are chosen once per process."""
    global _fast_paths
    _fast_paths = fast_paths


def fast_paths_enabled() -> bool:
    if _fast_paths is not None:
        return _fast_paths
    return os.environ.get(FAST_PATHS_ENV, "1").strip().lower() not in _FALSE


def declare_all() -> None:
    """Import every override module, so that each has declared its gate."""
    for module in pkgutil.iter_modules(__path__):
        importlib.import_module(f"{__name__}.{module.name}")


def turned_off() -> set[str]:
    """The overrides GQLCHANNELS_OVERRIDES_OFF turns off by name ("all": every one)."""
    names = {name.strip() for name in os.environ.get(OFF_ENV, "").split(",") if name.strip()}
    return set(REGISTRY) if "all" in names else names


def log_startup() -> None:
    """One line for the fast paths being off, one per override a version turned off."""
    declare_all()
    if not fast_paths_enabled():
        logger.info("fast paths off (--no-fast-paths): %s serve through the packages' own code",
                    ", ".join(o.name for o in REGISTRY.values() if o.kind is Kind.FAST_PATH))
    off = turned_off()
    unknown = off - set(REGISTRY)
    if unknown:
        logger.warning("%s names no override (%s): known are %s", OFF_ENV, ", ".join(sorted(unknown)),
                       ", ".join(REGISTRY))
    if off & set(REGISTRY):
        logger.info("overrides off (%s): %s serve through the packages' own code", OFF_ENV,
                    ", ".join(sorted(off & set(REGISTRY))))
    for gate in REGISTRY.values():
        outside = gate.out_of_range()
        if outside:
            logger.warning("%s not used: written for %s, installed %s; %s serves instead",
                           gate.name, ", ".join(f"{p} {s}" for p, s in gate.written_for.items()),
                           ", ".join(outside), gate.stock)
