"""The operations every contender is driven with. HTTP requests are kept as the exact bytes
sent, so that wrk, the response checks and the floor all see the same request."""

from __future__ import annotations

import json

HELLO = json.dumps({"query": "{ hello }"}).encode()

# A list of 20 objects with 5 fields, a fragment, a nested object, variables.
NESTED = json.dumps({
    "query": "query Shelf($first: Int!) { books(first: $first) { ...BookFields author { id name } } }"
             " fragment BookFields on Book { id title year rating inStock }",
    "operationName": "Shelf",
    "variables": {"first": 20},
}).encode()

# Plain fields, as the chat example's subscription selects: the event alone decides the result.
SUBSCRIBE = "subscription($room: String!) { joinChatRooms(rooms: [{id: $room}]) { id message } }"
# With `viewer`, a field resolved for each subscriber from its connection_init payload.
SUBSCRIBE_WITH_VIEWER = "subscription($room: String!) { joinChatRooms(rooms: [{id: $room}]) { id message viewer } }"
SEND = "mutation($room: String!, $msg: String!) { sendChatMessage(room: {id: $room}, message: $msg) }"
