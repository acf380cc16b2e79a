// The schema of bench/contenders/schemas.py (schema.graphql), with resolvers over any pub/sub,
// so that graphql-yoga and Apollo Server answer exactly what the Python contenders answer.
import { readFileSync } from "node:fs";

export const typeDefs = readFileSync(new URL("schema.graphql", import.meta.url), "utf8");

// The same shelf as schemas.py's: built on each request, as from a database.
export function shelf(first) {
  const books = [];
  for (let n = 0; n < Math.min(first, 100); n++) {
    books.push({
      id: String(n + 1),
      title: `Book ${n + 1}`,
      year: 1990 + n,
      rating: (n % 5) + 0.5,
      inStock: n % 3 !== 0,
      author: { id: `a${n % 4}`, name: `Author ${n % 4}`, born: 1950 + (n % 4) },
    });
  }
  return books;
}

/**
 * Resolvers over a pub/sub: publish(roomId, payload) and subscribe(roomIds) -> async iterable
 * of payloads. `viewer` has its own resolver and reads the connection's connection_init
 * payload from the context, so no server can share its result between subscribers.
 */
export function makeResolvers({ publish, subscribe }) {
  return {
    Query: {
      hello: (_root, { name }) => `Hello, ${name}!`,
      books: (_root, { first }) => shelf(first),
    },
    Mutation: {
      sendChatMessage: async (_root, { room, message }) => {
        await publish(room.id, { id: room.id, message });
        return true;
      },
    },
    Subscription: {
      joinChatRooms: {
        subscribe: (_root, { rooms }) => subscribe(rooms.map((room) => room.id)),
        resolve: (payload) => payload,
      },
    },
    ChatRoomMessage: {
      viewer: (_message, _args, context) => context?.connectionParams?.viewer ?? "anonymous",
    },
  };
}

export function portFromArguments() {
  const at = process.argv.indexOf("--port");
  const port = Number(process.argv[at + 1]);
  if (at < 0 || !Number.isInteger(port)) {
    throw new Error("usage: node SERVER.js --port PORT");
  }
  return port;
}
