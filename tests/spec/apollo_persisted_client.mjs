// Apollo Client 4's persisted queries link (PersistedQueryLink, hashing with node:crypto's
// SHA-256, as its documentation sets it up) in front of HttpLink for queries and mutations and
// GraphQLWsLink for subscriptions. Prints one JSON line per event: each document the link
// hashes, each HTTP request it makes (method, whether it carried the document and the hash),
// each result, and the error of an operation the server refuses.
// Usage: node apollo_persisted_client.mjs http://127.0.0.1:PORT/graphql ROOM [post|get] [EXTRA_QUERY]
import { createHash } from 'node:crypto';
import { ApolloClient, HttpLink, InMemoryCache, gql, split } from '@apollo/client';
import { PersistedQueryLink } from '@apollo/client/link/persisted-queries';
import { GraphQLWsLink } from '@apollo/client/link/subscriptions';
import { getMainDefinition } from '@apollo/client/utilities';
import { createClient } from 'graphql-ws';
import WebSocket from 'ws';

const [url, room, method = 'post', extraQuery] = process.argv.slice(2);
const wsUrl = url.replace(/^http/, 'ws');
const HELLO = 'query Hello($name: String!) { hello(name: $name) }';
const SEND = 'mutation Send($room: String!, $message: String!) { sendChatMessage(room: {id: $room}, message: $message) }';
const JOIN = 'subscription Join($room: String!) { joinChatRooms(rooms: [{id: $room}]) { id message } }';
const print = (event) => console.log(JSON.stringify(event));
const timer = setTimeout(() => { print({ event: 'timeout' }); process.exit(2); }, 30000);

async function recordingFetch(input, init) {
  const target = new URL(typeof input === 'string' ? input : input.url);
  let params;
  if ((init?.method || 'GET') === 'GET') {
    params = Object.fromEntries(target.searchParams);
    if (params.extensions) params.extensions = JSON.parse(params.extensions);
  } else {
    params = JSON.parse(init.body);
  }
  const response = await fetch(input, init);
  print({ event: 'request', method: init?.method || 'GET', query: typeof params.query === 'string',
          hash: Boolean(params.extensions?.persistedQuery), status: response.status });
  return response;
}

const persisted = new PersistedQueryLink({
  sha256: (document) => {
    print({ event: 'document', body: document });
    return createHash('sha256').update(document).digest('hex');
  },
  useGETForHashedQueries: method === 'get',
});
const socket = createClient({ url: wsUrl, webSocketImpl: WebSocket, retryAttempts: 0 });
const isSubscription = ({ query }) => {
  const definition = getMainDefinition(query);
  return definition.kind === 'OperationDefinition' && definition.operation === 'subscription';
};
const client = new ApolloClient({
  link: persisted.concat(split(isSubscription, new GraphQLWsLink(socket), new HttpLink({ uri: url, fetch: recordingFetch }))),
  cache: new InMemoryCache(),
});
const plain = (result) => (result.errors && result.errors.length ? { data: result.data, errors: result.errors } : { data: result.data });
const query = async (document, variables) =>
  plain(await client.query({ query: gql(document), variables, fetchPolicy: 'network-only' }));

try {
  print({ event: 'query', result: await query(HELLO, { name: 'first' }) });
  print({ event: 'query', result: await query(HELLO, { name: 'second' }) });
  print({ event: 'mutation', result: plain(await client.mutate({ mutation: gql(SEND), variables: { room, message: 'hi' } })) });
  const joined = await new Promise((resolve, reject) => {
    const subscription = client.subscribe({ query: gql(JOIN), variables: { room } }).subscribe({
      next: (result) => { subscription.unsubscribe(); resolve(plain(result)); },
      error: reject,
    });
  });
  print({ event: 'next', result: joined });
  if (extraQuery) {
    try {
      print({ event: 'extra', result: await query(extraQuery, {}) });
    } catch (error) {
      print({ event: 'extra error', message: error.message, errors: error.errors });
    }
  }
} catch (error) {
  print({ event: 'error', message: error.message, stack: error.stack });
} finally {
  client.stop();
  await socket.dispose();
  clearTimeout(timer);
  print({ event: 'done' });
}
