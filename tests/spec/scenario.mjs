// What every client script does against the chat example, through the client's own API: a
// query, a subscription to a room, a mutation sent once the room's join notice has arrived,
// the mutation's message received over the subscription, then the client unsubscribes and
// closes. It then waits until the server's /metrics show no subscription and no WebSocket
// left open, while the client process still runs. Prints one JSON line per event.
//
// A client script calls run(name, client), where client has:
//   query(document, variables) and mutate(document, variables): Promise<{data, errors?}>
//   subscribe(document, variables, {next(result), error(err)}): a function that unsubscribes
//   close(): Promise, once everything is unsubscribed
// Usage of every script: node SCRIPT.mjs http://127.0.0.1:PORT/graphql ROOM

export const [url, room] = process.argv.slice(2);
export const wsUrl = url.replace(/^http/, 'ws');
export const HELLO = 'query Hello($name: String!) { hello(name: $name) }';
export const SEND = 'mutation Send($room: String!, $message: String!) { sendChatMessage(room: {id: $room}, message: $message) }';
export const JOIN = 'subscription Join($room: String!) { joinChatRooms(rooms: [{id: $room}]) { id message } }';

const print = (event) => console.log(JSON.stringify(event));
// GraphQL results as the server sent them, whatever wrapper the client puts around them.
const plain = (result) => (result.errors && result.errors.length ? { data: result.data, errors: result.errors } : { data: result.data });

async function gauges() {
  const text = await (await fetch(new URL('/metrics', url))).text();
  const value = (name) => Number((text.match(new RegExp(`^${name} (\\S+)$`, 'm')) || [0, 0])[1]);
  return { subscriptions: value('gqlchannels_subscriptions_active'), websockets: value('gqlchannels_websocket_connections') };
}

export async function run(name, client) {
  const timer = setTimeout(() => { print({ event: 'timeout' }); process.exit(2); }, 30000);
  try {
    print({ event: 'query', result: plain(await client.query(HELLO, { name })) });
    const expected = `from ${name}`;
    await new Promise((resolve, reject) => {
      // The mutation's answer and the room's message may arrive in either order.
      let unsubscribe, heard = false, answered = false;
      const finish = () => { if (heard && answered) { unsubscribe(); resolve(); } };
      unsubscribe = client.subscribe(JOIN, { room }, {
        next: (result) => {
          if (result.errors && result.errors.length) { reject(new Error(JSON.stringify(result.errors))); return; }
          const message = result.data.joinChatRooms.message;
          print({ event: 'next', message });
          if (message.endsWith('just joined the room!')) {
            client.mutate(SEND, { room, message: expected }).then((answer) => {
              print({ event: 'mutation', result: plain(answer) });
              answered = true;
              finish();
            }, reject);
          } else if (message === expected) {
            heard = true;
            finish();
          }
        },
        error: (error) => reject(error instanceof Error ? error : new Error(JSON.stringify(error))),
      });
    });
    await client.close();
    let left = await gauges();
    for (let tries = 0; (left.subscriptions || left.websockets) && tries < 100; tries++) {
      await new Promise((resolve) => setTimeout(resolve, 100));
      left = await gauges();
    }
    print({ event: 'left open', ...left });
    print({ event: 'done' });
  } catch (error) {
    print({ event: 'error', message: String(error && error.stack || error) });
    process.exitCode = 1;
  } finally {
    clearTimeout(timer);
  }
  // Whatever a client library keeps alive (timers, sockets it meant to reuse) must not hold
  // the test: the server's gauges above already tell whether it closed what it opened.
  process.exit();
}
