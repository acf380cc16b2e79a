"""A virtual environment like the test's own, minus some distributions: for what a user
without an optional extra meets. Made of symbolic links to this environment's packages, so
it takes a moment, not an install."""

from __future__ import annotations

import subprocess
import sys
import sysconfig
from pathlib import Path


def environment_without(directory: Path, *prefixes: str) -> Path:
    """A venv in `directory` holding every package of this one except those whose top-level
    name or distribution starts with one of `prefixes`; returns its python."""
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(directory)], check=True)
    python = directory / "bin" / "python"
    target = Path(subprocess.run([str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                                 capture_output=True, text=True, check=True).stdout.strip())
    source = Path(sysconfig.get_paths()["purelib"])
    for entry in source.iterdir():
        if entry.name.lower().replace("-", "_").startswith(tuple(p.replace("-", "_") for p in prefixes)):
            continue
        link = target / entry.name
        if not link.exists():
            link.symlink_to(entry)
    return python
