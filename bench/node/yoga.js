// graphql-yoga 5 as its documentation sets it up for graphql-ws: one Node process, yoga on
// node:http, a ws server on the same port and path, yoga's in-memory createPubSub.
import { createServer } from "node:http";

import { useServer } from "graphql-ws/use/ws";
import { createPubSub, createSchema, createYoga, Repeater } from "graphql-yoga";
import { WebSocketServer } from "ws";

import { makeResolvers, portFromArguments, typeDefs } from "./schema.js";

const pubSub = createPubSub();
const resolvers = makeResolvers({
  publish: (roomId, payload) => pubSub.publish("chat-room", roomId, payload),
  subscribe: (roomIds) =>
    roomIds.length === 1
      ? pubSub.subscribe("chat-room", roomIds[0])
      : Repeater.merge(roomIds.map((roomId) => pubSub.subscribe("chat-room", roomId))),
});

const yoga = createYoga({ schema: createSchema({ typeDefs, resolvers }), graphiql: false });
const server = createServer(yoga);
const wsServer = new WebSocketServer({ server, path: yoga.graphqlEndpoint });

useServer(
  {
    execute: (args) => args.rootValue.execute(args),
    subscribe: (args) => args.rootValue.subscribe(args),
    onSubscribe: async (ctx, _id, params) => {
      const { schema, execute, subscribe, contextFactory, parse, validate } = yoga.getEnveloped({
        ...ctx,
        req: ctx.extra.request,
        socket: ctx.extra.socket,
        params,
      });
      const args = {
        schema,
        operationName: params.operationName,
        document: parse(params.query),
        variableValues: params.variables,
        contextValue: await contextFactory(),
        rootValue: { execute, subscribe },
      };
      const errors = validate(args.schema, args.document);
      if (errors.length) return errors;
      return args;
    },
  },
  wsServer,
);

server.listen(portFromArguments(), "127.0.0.1");
for (const signal of ["SIGINT", "SIGTERM"]) {
  process.on(signal, () => process.exit(0));
}
