"""A schema whose subscription's plain fields depend only on the event, beside fields that
do not (a resolver reading the user, one that fails), for the tests of shared execution."""

from __future__ import annotations

import enum
from collections.abc import AsyncGenerator

import strawberry
from strawberry.types import Info

from gqlchannels import AuthRequest, Unauthorized

POST = "topic.post"
USERS = {"alice-token": "alice", "bob-token": "bob"}


def auth(request: AuthRequest) -> str:
    user = USERS.get(request.bearer_token or "")
    if user is None:
        raise Unauthorized("a valid bearer token is required")
    return user


@strawberry.enum
class Mood(enum.Enum):
    HAPPY = "happy"
    SAD = "sad"


@strawberry.type
class Author:
    name: str

    @strawberry.field
    def viewer(self, info: Info) -> str:
        return f"{info.context['user']} reads {self.name}"


@strawberry.type
class Post:
    id: strawberry.ID
    text: str
    likes: int | None
    score: float
    mood: Mood
    tags: list[str]
    author: Author

    @strawberry.field
    def secret(self) -> str:
        raise ValueError("the database password is hunter2")


def post_of(message: dict) -> Post:
    return Post(id=message["id"], text=message["text"], likes=message["likes"], score=message["score"],
                mood=Mood(message["mood"]), tags=list(message["tags"]), author=Author(name=message["author"]))


JOINED = {"id": "0", "text": "joined", "likes": 0, "score": 0.0, "mood": "happy", "tags": [], "author": "server"}


@strawberry.type
class Query:
    @strawberry.field
    def ok(self) -> bool:
        return True


@strawberry.type
class Mutation:
    @strawberry.mutation
    async def post(self, info: Info, topic: str, id: strawberry.ID, text: str, likes: int | None = None,
                   score: float = 0.0, mood: Mood = Mood.HAPPY, tags: list[str] | None = None,
                   author: str = "carol") -> bool:
        await info.context["events"].publish(f"topic-{topic}", {
            "type": POST, "id": id, "text": text, "likes": likes, "score": score, "mood": mood.value,
            "tags": tags or [], "author": author})
        return True


@strawberry.type
class Subscription:
    @strawberry.subscription
    async def posts(self, info: Info, topic: str) -> AsyncGenerator[Post, None]:
        async with info.context["events"].listen(f"topic-{topic}", type=POST) as messages:
            yield post_of(JOINED)  # after the group is joined: from now on nothing is missed
            async for message in messages:
                yield post_of(message)


schema = strawberry.Schema(query=Query, mutation=Mutation, subscription=Subscription)
