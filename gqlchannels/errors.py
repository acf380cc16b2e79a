"""Exceptions raised by gqlchannels' library code.

Library code raises these; only the CLI turns them into a message and an exit code.
Every message names the bad value and says what to do about it.
"""


class GqlchannelsError(Exception):
    """Base class for every error gqlchannels raises on purpose."""


class ConfigError(GqlchannelsError):
    """A setting (flag, environment variable or argument) has a value that cannot work."""


class AppImportError(GqlchannelsError):
    """The APP import string does not lead to a Strawberry schema.

    When the user's own code raised (importing the module, calling the factory), that
    exception is its __cause__, whose traceback is worth showing at --log-level debug.
    """


def traceback_hint(exc: GqlchannelsError, *, showing_tracebacks: bool) -> str:
    """The sentence to end an error line with: how to see the traceback of the user's code
    that raised, unless it is already shown (or there is none)."""
    if showing_tracebacks or not isinstance(exc, AppImportError) or exc.__cause__ is None:
        return ""
    return " Run with --log-level debug for the traceback."


class MessageNotSerializable(GqlchannelsError, TypeError):
    """A message holds a value the channel layer cannot carry (refused before sending)."""


class LayerUnavailable(GqlchannelsError):
    """The channel layer could not take a message in time (broker down or unreachable)."""


class InvalidName(GqlchannelsError, TypeError):
    """A group or channel name the channel layer cannot carry (a TypeError, as Channels raises)."""
