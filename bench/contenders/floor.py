"""The floor: a raw ASGI app that answers each of the bench's requests with its fixed answer,
computed once at start, and `{ hello }`'s answer to anything else: what serving these bytes
costs with no GraphQL at all."""

import json

from bench.contenders.schemas import plain
from bench.operations import HELLO, NESTED


def _answer(request: bytes) -> bytes:
    payload = json.loads(request)
    result = plain.execute_sync(payload["query"], variable_values=payload.get("variables"),
                                operation_name=payload.get("operationName"))
    return json.dumps({"data": result.data}, separators=(",", ":")).encode()


ANSWERS = {request: _answer(request) for request in (HELLO, NESTED)}


async def app(scope, receive, send):  # noqa: ANN001, ANN201
    if scope["type"] != "http":
        return
    request = b""
    while True:
        message = await receive()
        request += message.get("body", b"")
        if not message.get("more_body"):
            break
    body = ANSWERS.get(request, ANSWERS[HELLO])
    await send({"type": "http.response.start", "status": 200,
                "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]})
    await send({"type": "http.response.body", "body": body})
