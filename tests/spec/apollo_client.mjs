// Apollo Client 4 as its documentation sets it up: queries and mutations over HttpLink,
// subscriptions over GraphQLWsLink (graphql-ws); or, with the argument "websocketlink", the old
// WebSocketLink (subscriptions-transport-ws) carrying every operation.
// Usage: node apollo_client.mjs http://127.0.0.1:PORT/graphql ROOM [graphqlwslink|websocketlink]
import { ApolloClient, HttpLink, InMemoryCache, gql, split } from '@apollo/client';
import { GraphQLWsLink } from '@apollo/client/link/subscriptions';
import { WebSocketLink } from '@apollo/client/link/ws';
import { getMainDefinition } from '@apollo/client/utilities';
import { createClient } from 'graphql-ws';
import transportWs from 'subscriptions-transport-ws';
import WebSocket from 'ws';
import { run, url, wsUrl } from './scenario.mjs';

const mode = process.argv[4] || 'graphqlwslink';
let link, closeSocket;
if (mode === 'websocketlink') {
  const socket = new transportWs.SubscriptionClient(wsUrl, { reconnect: false }, WebSocket);
  link = new WebSocketLink(socket);
  closeSocket = async () => socket.close();
} else {
  const socket = createClient({ url: wsUrl, webSocketImpl: WebSocket, retryAttempts: 0 });
  const isSubscription = ({ query }) => {
    const definition = getMainDefinition(query);
    return definition.kind === 'OperationDefinition' && definition.operation === 'subscription';
  };
  link = split(isSubscription, new GraphQLWsLink(socket), new HttpLink({ uri: url }));
  closeSocket = () => socket.dispose();
}
const client = new ApolloClient({ link, cache: new InMemoryCache() });

await run(`apollo ${mode}`, {
  query: (document, variables) => client.query({ query: gql(document), variables, fetchPolicy: 'network-only' }),
  mutate: (document, variables) => client.mutate({ mutation: gql(document), variables }),
  subscribe: (document, variables, sink) => {
    const subscription = client.subscribe({ query: gql(document), variables }).subscribe(sink);
    return () => subscription.unsubscribe();
  },
  close: async () => { client.stop(); await closeSocket(); },
});
