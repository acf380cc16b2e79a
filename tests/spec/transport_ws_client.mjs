// subscriptions-transport-ws 0.11's SubscriptionClient (the legacy graphql-ws protocol), which
// sends queries and mutations over the same socket as subscriptions.
// Usage: node transport_ws_client.mjs http://127.0.0.1:PORT/graphql ROOM
import transportWs from 'subscriptions-transport-ws';
import WebSocket from 'ws';
import { run, wsUrl } from './scenario.mjs';

const client = new transportWs.SubscriptionClient(wsUrl, { reconnect: false }, WebSocket);
const once = (query, variables) => new Promise((resolve, reject) => {
  let result;
  client.request({ query, variables }).subscribe({
    next: (value) => { result = value; }, error: reject, complete: () => resolve(result),
  });
});

await run('subscriptions-transport-ws', {
  query: once,
  mutate: once,
  subscribe: (query, variables, sink) => {
    const subscription = client.request({ query, variables }).subscribe(sink);
    return () => subscription.unsubscribe();
  },
  close: async () => client.close(),
});
