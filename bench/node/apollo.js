// Apollo Server 5, one Node process, in either of the two setups its documentation shows:
//   node apollo.js --port N               express with expressMiddleware, graphql-ws's useServer
//                                         on a ws server sharing the HTTP server, and
//                                         graphql-subscriptions' in-memory PubSub (subscriptions)
//   node apollo.js --port N --standalone  startStandaloneServer: HTTP only, without express
import { createServer } from "node:http";

import { ApolloServer } from "@apollo/server";
import { ApolloServerPluginDrainHttpServer } from "@apollo/server/plugin/drainHttpServer";
import { startStandaloneServer } from "@apollo/server/standalone";
import { expressMiddleware } from "@as-integrations/express5";
import { makeExecutableSchema } from "@graphql-tools/schema";
import cors from "cors";
import express from "express";
import { PubSub } from "graphql-subscriptions";
import { useServer } from "graphql-ws/use/ws";
import { WebSocketServer } from "ws";

import { makeResolvers, portFromArguments, typeDefs } from "./schema.js";

const pubsub = new PubSub();
const resolvers = makeResolvers({
  publish: (roomId, payload) => pubsub.publish(`chat-room-${roomId}`, payload),
  subscribe: (roomIds) => pubsub.asyncIterableIterator(roomIds.map((roomId) => `chat-room-${roomId}`)),
});
const schema = makeExecutableSchema({ typeDefs, resolvers });
const port = portFromArguments();

async function startWithSubscriptions() {
  const app = express();
  const httpServer = createServer(app);
  const wsServer = new WebSocketServer({ server: httpServer, path: "/graphql" });
  const serverCleanup = useServer(
    { schema, context: (ctx) => ({ connectionParams: ctx.connectionParams }) },
    wsServer,
  );
  const server = new ApolloServer({
    schema,
    plugins: [
      ApolloServerPluginDrainHttpServer({ httpServer }),
      {
        async serverWillStart() {
          return {
            async drainServer() {
              await serverCleanup.dispose();
            },
          };
        },
      },
    ],
  });
  await server.start();
  app.use("/graphql", cors(), express.json(), expressMiddleware(server));
  httpServer.listen(port, "127.0.0.1");
  return server;
}

async function startStandalone() {
  const server = new ApolloServer({ schema });
  // Serves every path; the bench posts to /graphql like everywhere else.
  await startStandaloneServer(server, { listen: { port, host: "127.0.0.1" } });
  return server;
}

const server = process.argv.includes("--standalone") ? await startStandalone() : await startWithSubscriptions();
for (const signal of ["SIGINT", "SIGTERM"]) {
  process.on(signal, async () => {
    await server.stop();
    process.exit(0);
  });
}
