"""The README's code, as a user copies it: the tests run what the README shows."""

from __future__ import annotations

import re
from pathlib import Path

README = Path(__file__).resolve().parents[2] / "README.md"


def readme_section(title: str) -> str:
    """The text of the README section `## title`, up to the next section."""
    return README.read_text().split(f"## {title}", 1)[1].split("\n## ", 1)[0]


def readme_example(title: str = "Writing subscriptions") -> str:
    """The first Python code block of a README section."""
    return re.search(r"```python\n(.*?)```", readme_section(title), re.S).group(1)


def readme_examples(title: str) -> list[str]:
    """Every Python code block of a README section, in order."""
    return re.findall(r"```python\n(.*?)```", readme_section(title), re.S)
