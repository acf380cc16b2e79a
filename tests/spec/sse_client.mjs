// graphql-sse's client (distinct connections mode, its default): every operation is a POST
// with Accept: text/event-stream, so queries and mutations come back as one-event streams.
// Usage: node sse_client.mjs http://127.0.0.1:PORT/graphql ROOM   (a server with --sse)
import { createClient } from 'graphql-sse';
import { run, url } from './scenario.mjs';

const client = createClient({ url, retryAttempts: 0 });
const once = (query, variables) => new Promise((resolve, reject) => {
  let result;
  client.subscribe({ query, variables }, {
    next: (value) => { result = value; }, error: reject, complete: () => resolve(result),
  });
});

await run('graphql-sse', {
  query: once,
  mutate: once,
  subscribe: (query, variables, sink) => client.subscribe({ query, variables }, { ...sink, complete: () => {} }),
  close: async () => client.dispose(),
});
