"""Errors and help that name the environment variable a value came from.

Every option of every command reads a GQLCHANNELS_* variable (or WEB_CONCURRENCY); a flag on
the command line wins. A message about a value the user set in the environment names that
variable, not only the flag they never typed, and --help lists each option's variables.
"""

from __future__ import annotations

import os
import re
from typing import Any

import click
from click.core import ParameterSource

from ..config.layer_url import mask_url


def environment_variables(param: click.Parameter) -> list[str]:
    return [param.envvar] if isinstance(param.envvar, str) else list(param.envvar or ())


def environment_source(ctx: click.Context, param: click.Parameter) -> tuple[str, str] | None:
    """The variable (and its text) a parameter's value came from, if it came from the
    environment; found as click finds it: the first of its variables that is not empty."""
    if param.name is None or ctx.get_parameter_source(param.name) is not ParameterSource.ENVIRONMENT:
        return None
    for name in environment_variables(param):
        if os.environ.get(name):
            return name, os.environ[name]
    return None


def flags(param: click.Parameter) -> list[str]:
    """How the user writes a parameter on the command line: ['--workers'], or ['APP']."""
    return list(param.opts) if isinstance(param, click.Option) else [param.human_readable_name]


def _mentions(text: str, token: str) -> re.Match[str] | None:
    # '--port' but not '--port-range'; 'APP' but not 'GQLCHANNELS_APP'
    return re.search(rf"(?<![\w-]){re.escape(token)}(?![\w-])", text)


def _printable(value: str) -> str:
    return mask_url(value) if "://" in value else value  # a broker password never shown


def name_environment_sources(message: str, ctx: click.Context) -> str:
    """Rewrite an error message so that each value it names that came from the environment
    is named by its variable: '--workers 2 with ...' becomes 'WEB_CONCURRENCY=2 (--workers)
    with ...'. Works from the message alone, so it covers every option of every command,
    including ones added later, as long as the message names the flag (or quotes the value)."""
    unplaced: list[str] = []
    for param in ctx.command.params:
        source = environment_source(ctx, param)
        if source is None:
            continue
        variable, raw = source
        setting = f"{variable}={_printable(raw)}"
        value = ctx.params.get(param.name or "")
        tokens = flags(param)
        # '--port 8000 is busy' -> 'GQLCHANNELS_PORT=8000 (--port) is busy'
        spelled = next((match for token in tokens for shown in (value, repr(value))
                        if (match := _mentions(message, f"{token} {shown}"))), None)
        # "layer URL 'nats://x' has ..." -> "layer URL 'nats://x' (from GQLCHANNELS_LAYER_URL) has ..."
        quoted = next((q for q in {repr(value), repr(_printable(str(value)))} if q in message), None) \
            if isinstance(value, str) and value else None
        if spelled is not None:
            flag = spelled.group().split(" ", 1)[0]
            message = f"{message[:spelled.start()]}{setting} ({flag}){message[spelled.end():]}"
        elif quoted is not None:
            end = message.index(quoted) + len(quoted)
            message = f"{message[:end]} (from {variable}){message[end:]}"
        elif any(_mentions(message, token) for token in tokens):
            unplaced.append(f"{tokens[0]} is set by {setting}")
    if unplaced:
        message = f"{message.rstrip()} ({'; '.join(unplaced)})"
    return message


class EnvironmentAwareCommand(click.Command):
    """A command whose --help shows each option's environment variable, and whose usage
    errors name the variable a bad value came from ('Invalid value for GQLCHANNELS_WORKERS
    (--workers)') instead of only the flag."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        for param in self.params:
            if isinstance(param, click.Option):
                param.show_envvar = True
            elif param.envvar:  # arguments have no line of their own in --help
                variables = " or ".join(environment_variables(param))
                self.help = f"{self.help or ''}\n\n{param.human_readable_name} may also be set with {variables}."

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        try:
            return super().parse_args(ctx, args)
        except click.BadParameter as exc:
            if exc.param_hint is None and exc.param is not None:
                exc.param_hint = self.error_hint(ctx, exc.param, missing=isinstance(exc, click.MissingParameter))
            raise

    @staticmethod
    def error_hint(ctx: click.Context, param: click.Parameter, *, missing: bool) -> str:
        # Not Option.get_error_hint: with show_envvar it lists every variable of the option
        # even when the value was typed on the command line.
        written = " / ".join(flags(param))
        source = environment_source(ctx, param)
        if source is not None:
            return f"{source[0]} ({written})"
        if missing and param.envvar:
            return f"'{written}' (or set {' or '.join(environment_variables(param))})"
        return f"'{written}'"


class CommandGroup(click.Group):
    command_class = EnvironmentAwareCommand
