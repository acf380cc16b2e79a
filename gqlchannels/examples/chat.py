"""The chat room from Strawberry's Channels page, corrected so that it runs.

Serve it with:  gqlchannels serve gqlchannels.examples.chat:schema

Corrections to the page's example: the removed `channel_listen` becomes gqlchannels'
`info.context["events"].listen(...)`, which joins the groups before the subscription waits
(nothing sent in between is lost), sees only its own rooms even beside another subscription
on the same WebSocket, and leaves the rooms when the client goes; the join announcement goes
to the rooms just joined (the page loops over a `groups` attribute that layers do not have);
the announcement names the user, not the listener's internal channel name;
the mutation publishes through the same context (over HTTP there is no WebSocket consumer)
and returns the Boolean it declares; a Query type exists (a schema needs one); room ids are
checked, because they become channel-layer group names.
"""

from __future__ import annotations

import re
from collections.abc import AsyncGenerator

import strawberry
from graphql import GraphQLError
from strawberry.types import Info

# Group names may hold ASCII letters, digits, '-', '_' and '.', and must be under 100
# characters; "chat-room-" takes 10 of them.
ROOM_ID = re.compile(r"^[A-Za-z0-9_.-]{1,80}$")
MESSAGE_TYPE = "chat.message"


def room_group(room_id: str) -> str:
    if not ROOM_ID.match(room_id):
        # A GraphQLError: meant for the client, so shown even when unexpected errors are masked.
        raise GraphQLError(
            f"room id {room_id!r} is not valid: use 1 to 80 letters, digits, '-', '_' or '.'"
        )
    return f"chat-room-{room_id}"


def display_name(info: Info) -> str:
    """Who the room is told about: the user from `--auth`'s hook, or Django's user under
    AuthMiddlewareStack when mounted in a Django project; "Someone" when nobody logged in."""
    user = info.context.get("user")
    if user is None and "ws" in info.context:
        user = info.context["ws"].scope.get("user")
    if user is None or getattr(user, "is_anonymous", False):
        return "Someone"
    return str(user)


@strawberry.input
class ChatRoom:
    id: str


@strawberry.type
class ChatRoomMessage:
    id: str
    message: str


@strawberry.type
class Query:
    @strawberry.field
    def hello(self, name: str = "world") -> str:
        return f"Hello, {name}!"


@strawberry.type
class Mutation:
    @strawberry.mutation
    async def send_chat_message(self, info: Info, room: ChatRoom, message: str) -> bool:
        await info.context["events"].publish(
            room_group(room.id), {"type": MESSAGE_TYPE, "room_id": room.id, "message": message}
        )
        return True


@strawberry.type
class Subscription:
    @strawberry.subscription
    async def join_chat_rooms(
        self, info: Info, rooms: list[ChatRoom]
    ) -> AsyncGenerator[ChatRoomMessage, None]:
        """Join the given rooms and receive every message sent to them."""
        events = info.context["events"]
        groups = {room.id: room_group(room.id) for room in rooms}
        async with events.listen(groups.values(), type=MESSAGE_TYPE) as messages:
            for room_id, group in groups.items():
                await events.publish(
                    group,
                    {
                        "type": MESSAGE_TYPE,
                        "room_id": room_id,
                        "message": f"{display_name(info)} just joined the room!",
                    },
                )
            async for message in messages:
                yield ChatRoomMessage(id=message["room_id"], message=message["message"])


schema = strawberry.Schema(query=Query, mutation=Mutation, subscription=Subscription)
