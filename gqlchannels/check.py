"""What `gqlchannels check` verifies: the schema imports, and the layer carries a message."""

from __future__ import annotations

import asyncio
import time

from channels.layers import get_channel_layer
from strawberry.schema import BaseSchema

from .errors import GqlchannelsError

CHECK_GROUP = "gqlchannels.check"


class LayerCheckFailed(GqlchannelsError):
    """The channel layer could not carry a message to ourselves in time."""


def describe_schema(schema: BaseSchema) -> str:
    gql = schema._schema  # graphql-core schema: the public view of what clients can call
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
