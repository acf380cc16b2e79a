"""The one schema every contender serves (bench/node/schema.js is the same in SDL), in the two
Python styles: gqlchannels' context["events"] and Strawberry's hand-written Channels code
(get_channel_layer + listen_to_channel). No join announcements: 500 subscribers would
otherwise send each other 250,000 notices.

`ChatRoomMessage.viewer` has its own resolver, reading the subscriber's connection_init
payload: a field whose result differs from one subscriber to the next. `books` is the nested
query: 20 objects of 5 fields, each with a nested object."""

from __future__ import annotations

from collections.abc import AsyncGenerator

import strawberry
from channels.layers import get_channel_layer
from strawberry.types import Info

from gqlchannels.examples.chat import ChatRoom

MESSAGE = "chat.message"


@strawberry.type
class ChatRoomMessage:
    id: str
    message: str

    @strawberry.field
    def viewer(self, info: Info) -> str:
        params = info.context.get("connection_params")
        return str(params.get("viewer", "anonymous")) if isinstance(params, dict) else "anonymous"


@strawberry.type
class Author:
    id: strawberry.ID
    name: str
    born: int


@strawberry.type
class Book:
    id: strawberry.ID
    title: str
    year: int
    rating: float
    in_stock: bool
    author: Author


def shelf(first: int) -> list[Book]:
    """Built on each request, as from a database; the same shelf as schema.js's."""
    return [
        Book(id=strawberry.ID(str(n + 1)), title=f"Book {n + 1}", year=1990 + n, rating=n % 5 + 0.5,
             in_stock=n % 3 != 0,
             author=Author(id=strawberry.ID(f"a{n % 4}"), name=f"Author {n % 4}", born=1950 + n % 4))
        for n in range(min(first, 100))
    ]


@strawberry.type
class Query:
    @strawberry.field
    def hello(self, name: str = "world") -> str:
        return f"Hello, {name}!"

    @strawberry.field
    def books(self, first: int = 20) -> list[Book]:
        return shelf(first)


@strawberry.type(name="Mutation")
class EventsMutation:
    @strawberry.mutation
    async def send_chat_message(self, info: Info, room: ChatRoom, message: str) -> bool:
        await info.context["events"].publish(f"chat-room-{room.id}",
                                             {"type": MESSAGE, "room_id": room.id, "message": message})
        return True


@strawberry.type(name="Subscription")
class EventsSubscription:
    @strawberry.subscription
    async def join_chat_rooms(self, info: Info, rooms: list[ChatRoom]) -> AsyncGenerator[ChatRoomMessage, None]:
        async for event in info.context["events"].listen([f"chat-room-{r.id}" for r in rooms], type=MESSAGE):
            yield ChatRoomMessage(id=event["room_id"], message=event["message"])


@strawberry.type(name="Mutation")
class HandwrittenMutation:
    @strawberry.mutation
    async def send_chat_message(self, room: ChatRoom, message: str) -> bool:
        await get_channel_layer().group_send(f"chat-room-{room.id}",
                                             {"type": MESSAGE, "room_id": room.id, "message": message})
        return True


@strawberry.type(name="Subscription")
class HandwrittenSubscription:
    @strawberry.subscription
    async def join_chat_rooms(self, info: Info, rooms: list[ChatRoom]) -> AsyncGenerator[ChatRoomMessage, None]:
        ws = info.context["ws"]
        async with ws.listen_to_channel(MESSAGE, groups=[f"chat-room-{r.id}" for r in rooms]) as messages:
            async for event in messages:
                yield ChatRoomMessage(id=event["room_id"], message=event["message"])


ours = strawberry.Schema(query=Query, mutation=EventsMutation, subscription=EventsSubscription)
handwritten = strawberry.Schema(query=Query, mutation=HandwrittenMutation, subscription=HandwrittenSubscription)
plain = strawberry.Schema(query=Query)
