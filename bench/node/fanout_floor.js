// The fan-out floor: what the load client can read at all on this machine. A graphql-transport-ws
// server with no GraphQL in it: it acknowledges connection_init, remembers each subscribe's
// room, and for each sendChatMessage mutation (POST, JSON) writes one prepared text frame per
// subscriber of that room straight to its socket, then answers the mutation as the contenders
// do. Its cost per delivery is the socket write and little else, so the rate it reaches is the
// load side's limit (the client's CPU, the kernel) rather than a server's: no contender can be
// measured above it here.
//
//     node bench/node/fanout_floor.js --port PORT
import { createServer } from "node:http";

import { WebSocketServer } from "ws";

import { portFromArguments } from "./schema.js";

const rooms = new Map(); // room -> Map(ws -> subscription id)

/** An unmasked, unfragmented server text frame (RFC 6455, 5.2). */
function textFrame(text) {
  const payload = Buffer.from(text);
  const length = payload.length;
  const head = length < 126 ? 2 : length < 65536 ? 4 : 10;
  const frame = Buffer.allocUnsafe(head + length);
  frame[0] = 0x81;
  if (length < 126) {
    frame[1] = length;
  } else if (length < 65536) {
    frame[1] = 126;
    frame.writeUInt16BE(length, 2);
  } else {
    frame[1] = 127;
    frame.writeBigUInt64BE(BigInt(length), 2);
  }
  payload.copy(frame, head);
  return frame;
}

function leave(ws) {
  for (const [room, members] of rooms) {
    if (members.delete(ws) && !members.size) rooms.delete(room);
  }
}

function publish(room, message) {
  const members = rooms.get(room);
  if (!members) return;
  const data = JSON.stringify({ joinChatRooms: { id: room, message } });
  const frames = new Map(); // one frame per distinct subscription id (the bench uses one)
  for (const [ws, id] of members) {
    let frame = frames.get(id);
    if (!frame) {
      frame = textFrame(`{"id":${JSON.stringify(id)},"type":"next","payload":{"data":${data}}}`);
      frames.set(id, frame);
    }
    ws._socket.write(frame); // the prepared bytes, without ws's per-send framing
  }
}

const server = createServer((request, response) => {
  const chunks = [];
  request.on("data", (chunk) => chunks.push(chunk));
  request.on("end", () => {
    let body;
    try {
      body = JSON.parse(Buffer.concat(chunks));
    } catch {
      response.writeHead(400).end();
      return;
    }
    const { room, msg } = body.variables ?? {};
    if (request.method !== "POST" || typeof room !== "string" || typeof msg !== "string") {
      response.writeHead(400).end();
      return;
    }
    publish(room, msg);
    response.writeHead(200, { "content-type": "application/json" });
    response.end('{"data":{"sendChatMessage":true}}');
  });
});

const wsServer = new WebSocketServer({
  server,
  perMessageDeflate: false,
  handleProtocols: (protocols) => (protocols.has("graphql-transport-ws") ? "graphql-transport-ws" : false),
});

wsServer.on("connection", (ws) => {
  ws.on("message", (data) => {
    const message = JSON.parse(data);
    if (message.type === "connection_init") {
      ws.send('{"type":"connection_ack"}');
    } else if (message.type === "subscribe") {
      const room = message.payload?.variables?.room;
      if (!rooms.has(room)) rooms.set(room, new Map());
      rooms.get(room).set(ws, message.id);
    } else if (message.type === "complete") {
      leave(ws);
    } else if (message.type === "ping") {
      ws.send('{"type":"pong"}');
    }
  });
  ws.on("close", () => leave(ws));
});

server.listen(portFromArguments(), "127.0.0.1");
for (const signal of ["SIGINT", "SIGTERM"]) {
  process.on(signal, () => process.exit(0));
}
