"""The one schema every contender serves, in the two styles: gqlchannels' context["events"]
and the seed's hand-written Channels code (get_channel_layer + listen_to_channel). No join
announcements: 500 subscribers would otherwise send each other 250,000 notices."""

from __future__ import annotations

from collections.abc import AsyncGenerator

import strawberry
from channels.layers import get_channel_layer
from strawberry.types import Info

from gqlchannels.examples.chat import ChatRoom, ChatRoomMessage, Query

MESSAGE = "chat.message"


@strawberry.type
class EventsMutation:
    @strawberry.mutation
    async def send_chat_message(self, info: Info, room: ChatRoom, message: str) -> bool:
        await info.context["events"].publish(f"chat-room-{room.id}", {"type": MESSAGE, "room_id": room.id, "message": message})
        return True


@strawberry.type
class EventsSubscription:
    @strawberry.subscription
    async def join_chat_rooms(self, info: Info, rooms: list[ChatRoom]) -> AsyncGenerator[ChatRoomMessage, None]:
        async for event in info.context["events"].listen([f"chat-room-{r.id}" for r in rooms], type=MESSAGE):
            yield ChatRoomMessage(id=event["room_id"], message=event["message"])


@strawberry.type
class SeedMutation:
    @strawberry.mutation
    async def send_chat_message(self, room: ChatRoom, message: str) -> bool:
        await get_channel_layer().group_send(f"chat-room-{room.id}", {"type": MESSAGE, "room_id": room.id, "message": message})
        return True


@strawberry.type
class SeedSubscription:
    @strawberry.subscription
    async def join_chat_rooms(self, info: Info, rooms: list[ChatRoom]) -> AsyncGenerator[ChatRoomMessage, None]:
        ws = info.context["ws"]
        async with ws.listen_to_channel(MESSAGE, groups=[f"chat-room-{r.id}" for r in rooms]) as messages:
            async for event in messages:
                yield ChatRoomMessage(id=event["room_id"], message=event["message"])


ours = strawberry.Schema(query=Query, mutation=EventsMutation, subscription=EventsSubscription)
seed = strawberry.Schema(query=Query, mutation=SeedMutation, subscription=SeedSubscription)
plain = strawberry.Schema(query=Query)
