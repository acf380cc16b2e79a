"""Find the user's Strawberry schema from an import string like "myapp.schema:schema"."""

from __future__ import annotations

import importlib
import sys
from pathlib import Path

from strawberry.schema import BaseSchema, Schema

from ..errors import AppImportError


def import_schema(app: str, app_dir: str | None = ".") -> BaseSchema:
    """Import `module:attr` and return the schema it names.

    `attr` may be a schema or a zero-argument callable returning one. `app_dir` is put at
    the front of sys.path first, so a project's own packages import the way they would from
    its root. Every failure is an AppImportError whose message names the part that is wrong;
    where the user's code raised, that exception is chained (its traceback is for
    `--log-level debug`).
    """
    target = import_object(app, what="APP", app_dir=app_dir)
    called = not isinstance(target, Schema) and callable(target)
    if called:
        try:
            target = target()
        except Exception as exc:
            raise AppImportError(
                f"calling {app!r} to build the schema raised {type(exc).__name__}: {exc}."
            ) from exc

    if not isinstance(target, Schema):
        raise AppImportError(
            f"{app!r} {'returned' if called else 'is'} {describe_value(target)}, not a strawberry.Schema; "
            "point APP at a strawberry.Schema instance or a zero-argument function that returns one."
        )
    return target


def describe_value(value: object) -> str:
    """'an int (42)', 'a myapp.models.Thing (<Thing 3>)', 'None': what a user finds at a path."""
    if value is None:
        return "None"
    kind = type(value)
    name = kind.__qualname__ if kind.__module__ == "builtins" else f"{kind.__module__}.{kind.__qualname__}"
    article = "an" if name[0].lower() in "aeiou" else "a"
    shown = " ".join(repr(value).split())  # one line, whatever the repr
    return f"{article} {name} ({shown[:60]}{'...' if len(shown) > 60 else ''})"


def import_object(spec: str, *, what: str, app_dir: str | None = None) -> object:
    """The object a 'package.module:attribute' string names; `what` names the setting."""
    if app_dir:
        resolved = str(Path(app_dir).resolve())
        if resolved not in sys.path:
            sys.path.insert(0, resolved)

    module_name, sep, attr_path = spec.partition(":")
    if not sep or not module_name or not attr_path:
        raise AppImportError(
            f"{what} {spec!r} must look like 'package.module:attribute', "
            "for example 'myapp.schema:schema'."
        )

    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        missing = exc.name or ""
        if module_name == missing or module_name.startswith(missing + "."):
            raise AppImportError(
                f"could not import module {module_name!r} (from {what} {spec!r}): "
                f"no module named {missing!r} on sys.path. Check the spelling, "
                "or point --app-dir / GQLCHANNELS_APP_DIR at the directory that contains it."
            ) from None  # the message says it all; importlib's frames would add nothing
        # The user's module exists but itself imports something missing.
        raise AppImportError(
            f"importing {module_name!r} failed: {type(exc).__name__}: {exc}. "
            "Install the missing package, or fix the import in your module."
        ) from exc
    except Exception as exc:  # the user's module raised while importing: report, don't crash
        raise AppImportError(
            f"importing {module_name!r} raised {type(exc).__name__}: {exc}. Fix the module."
        ) from exc

    target: object = module
    for part in attr_path.split("."):
        try:
            target = getattr(target, part)
        except AttributeError:
            raise AppImportError(
                f"module {module_name!r} has no attribute {attr_path!r} (from {what} {spec!r})."
            ) from None
    return target
