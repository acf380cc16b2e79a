"""Checks the commands make before they start anything: `gqlchannels check` (the schema
imports, the layer carries a message) and, for `serve`, that the port is free."""

from __future__ import annotations

import asyncio
import errno
import socket
import time

from channels.layers import get_channel_layer
from graphql import build_schema
from strawberry.schema import BaseSchema

from ..errors import ConfigError, GqlchannelsError, LayerUnavailable

CHECK_GROUP = "gqlchannels.check"


class LayerCheckFailed(GqlchannelsError):
    """The channel layer could not carry a message to ourselves in time."""


def describe_schema(schema: BaseSchema) -> str:
    gql = build_schema(schema.as_str())  # what clients can call, from the SDL Strawberry prints
    parts = []
    for label, root in (("query", gql.query_type), ("mutation", gql.mutation_type), ("subscription", gql.subscription_type)):
        if root is not None:
            count = len(root.fields)
            parts.append(f"{count} {label} field{'s' if count != 1 else ''}")
    return ", ".join(parts)


async def layer_round_trip(timeout: float) -> float:
    """Join a group, send to it, receive it back, leave; return the seconds it took.

    This is the path a subscription uses, so passing it means subscriptions can work.
    """
    layer = get_channel_layer()
    started = time.perf_counter()
    try:
        async with asyncio.timeout(timeout):
            connect = getattr(layer, "connect", None)
            if connect is not None:
                # A broker that refuses (down, wrong password, unknown vhost) is said at once.
                await connect(timeout=timeout)
            channel = await layer.new_channel()
            await layer.group_add(CHECK_GROUP, channel)
            await layer.group_send(CHECK_GROUP, {"type": "gqlchannels.check"})
            await layer.receive(channel)
            await layer.group_discard(CHECK_GROUP, channel)
    except TimeoutError:
        raise LayerCheckFailed(
            f"the channel layer did not deliver a test message within {timeout:g} s; "
            "is the broker running and reachable at the layer URL?"
        ) from None
    except LayerUnavailable as exc:
        raise LayerCheckFailed(f"the channel layer cannot reach its broker: {exc}") from None
    except GqlchannelsError:
        raise
    except Exception as exc:
        raise LayerCheckFailed(f"the channel layer failed: {type(exc).__name__}: {exc}") from exc
    finally:
        close = getattr(layer, "close", None)
        if close is not None:
            try:
                await asyncio.wait_for(close(), timeout)
            except Exception:  # the check already failed or passed; closing is best effort
                pass
    return time.perf_counter() - started


def ensure_port_free(host: str, port: int) -> None:
    """Raise ConfigError, before anything starts, if uvicorn could not listen on host:port.

    Otherwise uvicorn would start the app (and, with --reload or --workers, a supervisor)
    and only then fail to bind, seven lines later with exit status 3. The trial sockets are
    made as uvicorn's are (SO_REUSEADDR, every address the host resolves to), so a port
    whose old connections linger in TIME_WAIT counts as free, as it is to uvicorn, and only
    a port another socket listens on counts as taken. Port 0 means "any free port".
    """
    if port == 0:
        return
    try:
        addresses = socket.getaddrinfo(host or None, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    except socket.gaierror as exc:
        raise ConfigError(f"--host {host!r} does not resolve to an address of this machine ({exc.strerror}).") from None
    unavailable: list[OSError] = []
    for family, kind, protocol, _, address in addresses:
        with socket.socket(family, kind, protocol) as trial:
            trial.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            if family == socket.AF_INET6:
                trial.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)  # as asyncio binds it
            try:
                trial.bind(address)
            except OSError as exc:
                if exc.errno == errno.EADDRINUSE:
                    raise ConfigError(
                        f"--port {port} on {host}: the address is already in use (another server is "
                        "listening there); pick another port with --port or GQLCHANNELS_PORT."
                    ) from None
                if exc.errno == errno.EACCES:
                    raise ConfigError(
                        f"--port {port} on {host}: permission denied; ports below 1024 need root "
                        "(or CAP_NET_BIND_SERVICE): pick a port above 1023 with --port or GQLCHANNELS_PORT."
                    ) from None
                unavailable.append(exc)
    if unavailable and len(unavailable) == len(addresses):
        # asyncio skips an address family the machine lacks (EADDRNOTAVAIL), so one such
        # address among others is no error; all of them is.
        raise ConfigError(f"--host {host!r}: cannot listen there ({unavailable[0].strerror}); "
                          "use an address of this machine, e.g. 127.0.0.1 or 0.0.0.0.")
