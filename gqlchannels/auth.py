"""The authentication hook: `--auth module:callable`.

The callable receives an `AuthRequest` (the HTTP headers, plus the `connection_init`
payload on a WebSocket) and returns the user, which resolvers find at
`info.context["user"]`; it raises `Unauthorized` to refuse: 401 over HTTP, close code 4403
over WebSocket (graphql-transport-ws; the legacy graphql-ws protocol gets its
`connection_error` message). It may be sync or async. Any other exception it raises is
logged and refuses too: a broken hook must fail closed.
"""

from __future__ import annotations

import dataclasses
import inspect
import logging
from collections.abc import Callable, Mapping
from typing import Any

from .config.importing import import_object
from .errors import ConfigError, GqlchannelsError

logger = logging.getLogger("gqlchannels")

AuthHook = Callable[["AuthRequest"], Any]


class Unauthorized(GqlchannelsError):
    """Raised by an auth hook to refuse a request or connection; the text goes to the client."""


@dataclasses.dataclass(frozen=True)
class AuthRequest:
    transport: str  # "http" or "websocket"
    headers: Mapping[str, str]  # lower-case names; a repeated header's values joined by ", "
    connection_params: Mapping[str, Any] | None = None  # the WebSocket connection_init payload

    @property
    def bearer_token(self) -> str | None:
        """The token of an `Authorization: Bearer ...` header, or of the payload's
        `Authorization`/`authorization` entry (browsers cannot set WebSocket headers)."""
        value = self.headers.get("authorization")
        if value is None and self.connection_params:
            value = self.connection_params.get("Authorization") or self.connection_params.get("authorization")
        if isinstance(value, str) and value[:7].lower() == "bearer ":
            return value[7:].strip()
        return None


def headers_of(scope: Mapping[str, Any]) -> dict[str, str]:
    headers: dict[str, str] = {}
    for raw_name, raw_value in scope.get("headers", []):
        name, value = raw_name.decode("latin-1").lower(), raw_value.decode("latin-1")
        headers[name] = f"{headers[name]}, {value}" if name in headers else value
    return headers


async def authenticate(hook: AuthHook, request: AuthRequest) -> Any:
    """The hook's user; Unauthorized if it refuses or fails."""
    try:
        user = hook(request)
        if inspect.isawaitable(user):
            user = await user
    except Unauthorized:
        raise
    except Exception:
        logger.exception("the auth hook failed; refusing the %s request", request.transport)
        raise Unauthorized("authentication failed") from None
    return user


def load_auth_hook(spec: str | AuthHook | None) -> AuthHook | None:
    """A callable from 'module:attribute' (or the callable itself)."""
    if spec is None or callable(spec):
        return spec
    hook = import_object(spec, what="--auth")
    if not callable(hook):
        raise ConfigError(f"--auth {spec!r} is a {type(hook).__name__}, not a callable taking an AuthRequest.")
    return hook
