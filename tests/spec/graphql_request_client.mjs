// graphql-request 7 for the query and the mutation (it has no subscriptions); the subscription
// that hears the mutation is graphql-ws's reference client.
// Usage: node graphql_request_client.mjs http://127.0.0.1:PORT/graphql ROOM
import { GraphQLClient } from 'graphql-request';
import { createClient } from 'graphql-ws';
import WebSocket from 'ws';
import { run, url, wsUrl } from './scenario.mjs';

const client = new GraphQLClient(url);
const socket = createClient({ url: wsUrl, webSocketImpl: WebSocket, retryAttempts: 0 });

await run('graphql-request', {
  query: async (document, variables) => ({ data: await client.request(document, variables) }),
  mutate: async (document, variables) => ({ data: await client.request(document, variables) }),
  subscribe: (query, variables, sink) => socket.subscribe({ query, variables }, { ...sink, complete: () => {} }),
  close: () => socket.dispose(),
});
