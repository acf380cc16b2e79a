"""Contender: strawberry.asgi.GraphQL on uvicorn, the thing a user could mount instead of us."""

from strawberry.asgi import GraphQL

from bench.contenders.schemas import plain

app = GraphQL(plain)
