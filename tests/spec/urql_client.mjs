// urql 6 (@urql/core) with its default exchanges (cacheExchange, fetchExchange). Against a
// plain server ("websocket", the default), subscriptions go through urql's subscriptionExchange
// over graphql-ws, as urql's documentation shows; against an --sse server ("sse"), with
// fetchSubscriptions the fetchExchange sends them itself (Accept: text/event-stream,
// multipart/mixed) and reads the event stream: urql's own way to subscribe without WebSockets
// (with neither, urql handles no subscription at all).
// Usage: node urql_client.mjs http://127.0.0.1:PORT/graphql ROOM [websocket|sse]
import { Client, cacheExchange, fetchExchange, subscriptionExchange } from '@urql/core';
import { createClient } from 'graphql-ws';
import WebSocket from 'ws';
import { run, url, wsUrl } from './scenario.mjs';

const mode = process.argv[4] || 'websocket';
let client, socket = null;
if (mode === 'sse') {
  client = new Client({ url, exchanges: [cacheExchange, fetchExchange], fetchSubscriptions: true });
} else {
  socket = createClient({ url: wsUrl, webSocketImpl: WebSocket, retryAttempts: 0 });
  client = new Client({
    url,
    exchanges: [cacheExchange, fetchExchange, subscriptionExchange({
      forwardSubscription(request) {
        const input = { ...request, query: request.query || '' };
        return { subscribe: (sink) => ({ unsubscribe: socket.subscribe(input, sink) }) };
      },
    })],
  });
}
// urql wraps errors in a CombinedError; the scenario wants the server's GraphQL errors.
const plain = (result) => {
  if (result.error && result.error.networkError) throw result.error.networkError;
  return { data: result.data, errors: result.error ? result.error.graphQLErrors.map((e) => ({ message: e.message })) : undefined };
};

await run(`urql ${mode}`, {
  query: async (document, variables) => plain(await client.query(document, variables).toPromise()),
  mutate: async (document, variables) => plain(await client.mutation(document, variables).toPromise()),
  subscribe: (document, variables, sink) => {
    const { unsubscribe } = client.subscription(document, variables).subscribe((result) => {
      try { sink.next(plain(result)); } catch (error) { sink.error(error); }
    });
    return unsubscribe;
  },
  close: async () => { if (socket) await socket.dispose(); },
});
