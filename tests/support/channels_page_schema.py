"""The chat schema of Strawberry's Channels page, in that page's own style (corrected so it
runs): the mutation uses get_channel_layer().group_send, the subscription
info.context["ws"].listen_to_channel, the consumer's shared channel. gqlchannels must keep
serving schemas written this way."""

from __future__ import annotations

from collections.abc import AsyncGenerator

import strawberry
from channels.layers import get_channel_layer
from strawberry.types import Info

from gqlchannels.examples.chat import ChatRoom, ChatRoomMessage, Query  # the same types, the page's resolvers


@strawberry.type
class Mutation:
    @strawberry.mutation
    async def send_chat_message(self, room: ChatRoom, message: str) -> bool:
        await get_channel_layer().group_send(
            f"chat-room-{room.id}", {"type": "chat.message", "room_id": room.id, "message": message}
        )
        return True


@strawberry.type
class Subscription:
    @strawberry.subscription
    async def join_chat_rooms(self, info: Info, rooms: list[ChatRoom]) -> AsyncGenerator[ChatRoomMessage, None]:
        ws = info.context["ws"]
        groups = [f"chat-room-{room.id}" for room in rooms]
        async with ws.listen_to_channel("chat.message", groups=groups) as messages:
            yield ChatRoomMessage(id="", message=f"{ws.channel_name} joined")  # groups are joined now
            async for message in messages:
                yield ChatRoomMessage(id=message["room_id"], message=message["message"])


schema = strawberry.Schema(query=Query, mutation=Mutation, subscription=Subscription)
