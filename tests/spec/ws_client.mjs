// graphql-ws's reference client against a server: a query, a subscription fed by a mutation
// sent over the same socket, then complete. Prints one JSON line per event.
// Usage: node ws_client.mjs ws://127.0.0.1:8000/graphql ROOM
import { createClient } from 'graphql-ws';
import WebSocket from 'ws';

const [url, room] = process.argv.slice(2);
const print = (event) => console.log(JSON.stringify(event));
const client = createClient({ url, webSocketImpl: WebSocket, retryAttempts: 0, lazy: false });
const timer = setTimeout(() => { print({ event: 'timeout' }); process.exit(2); }, 20000);

const query = await new Promise((resolve, reject) => {
  let result;
  client.subscribe({ query: '{ hello(name: "graphql-ws") }' }, {
    next: (value) => { result = value; }, error: reject, complete: () => resolve(result),
  });
});
print({ event: 'query', result: query });

await new Promise((resolve, reject) => {
  // The room message and the mutation's own result travel as two operations on one socket:
  // either may arrive first, so finish only once both have.
  let unsubscribe, heard = false, answered = false;
  const finish = () => { if (heard && answered) { unsubscribe(); resolve(); } };  // unsubscribe sends "complete"
  unsubscribe = client.subscribe(
    { query: 'subscription ($room: String!) { joinChatRooms(rooms: [{id: $room}]) { id message } }',
      variables: { room } },
    {
      next: (value) => {
        const message = value.data.joinChatRooms.message;
        print({ event: 'next', message });
        if (message.endsWith('just joined the room!')) {
          client.subscribe(
            { query: 'mutation ($room: String!) { sendChatMessage(room: {id: $room}, message: "from graphql-ws") }',
              variables: { room } },
            { next: (result) => { print({ event: 'mutation', result }); answered = true; finish(); },
              error: reject, complete: () => {} });
        } else if (message === 'from graphql-ws') {
          heard = true;
          finish();
        }
      },
      error: reject,
      complete: () => print({ event: 'complete' }),
    });
});
await client.dispose();
clearTimeout(timer);
print({ event: 'done' });
