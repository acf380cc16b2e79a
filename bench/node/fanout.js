// The load side of the fan-out phase of `python -m bench`, in Node so that the client is not the
// limit (one Python process took ~90% of a core at ~26,000 deliveries/s):
//
//     BENCH_OPERATIONS='{"subscribe": ..., "subscribe_with_viewer": ..., "send": ...}' \
//         node bench/node/fanout.js WS_URL HTTP_URL --subscribers 500 --messages 20 [--server-pid PID] [--viewer]
//
// `python -m bench` runs it with the documents of bench/operations.py in BENCH_OPERATIONS (one
// source of truth) and the raised open-file limit it gives every child. Opens N graphql-transport-ws
// connections with one subscription each, warms them up, publishes M messages one after another
// over HTTP and prints one JSON object:
//
//     {delivered, expected, wrong_viewer, warm_up_failures, deliveries_per_s, p50_ms, p99_ms,
//      server_cpu_us_per_delivery, client_cpu_share}
//
// When the contender does not cope (a refused handshake, a publish that fails or times out,
// subscriptions that never join), prints one line on stderr and exits with status 1.

import { execFileSync } from "node:child_process";
import { randomUUID } from "node:crypto";
import { readdirSync, readFileSync } from "node:fs";
import { performance } from "node:perf_hooks";
import { parseArgs } from "node:util";

import { LeanWebSocket } from "./lean_ws.js";

const LIMIT = 120_000; // ms any phase may take
const SEND_TIMEOUT = 30_000; // ms one publish (an HTTP mutation) may take
const QUIET = 1_000; // ms without a delivery after which the warm-up publishes again
const SETTLE = 50; // ms without a message after which the warm-up's leftovers are deemed drained
const BATCH = 100; // handshakes at a time: a burst of thousands is its own benchmark

/** The contender did not cope with the load: the one line reported as its result. */
class Failed extends Error {}

/** A publish (the sendChatMessage mutation) timed out or was answered with an error. */
class PublishFailed extends Failed {}

const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

function operations() {
  const documents = process.env.BENCH_OPERATIONS;
  if (!documents) {
    throw new Error("BENCH_OPERATIONS is not set: run me through python -m bench (bench/operations.py)");
  }
  const { subscribe, subscribe_with_viewer: subscribeWithViewer, send } = JSON.parse(documents);
  return { subscribe, subscribeWithViewer, send };
}

// --- server CPU from /proc, as bench/procstat.py reads it ------------------------------------

/** The fields of /proc/<pid>/stat after the command name, which may hold spaces and ')'. */
function statFields(pid) {
  const text = readFileSync(`/proc/${pid}/stat`, "latin1");
  return text.slice(text.lastIndexOf(")") + 2).trim().split(/\s+/);
}

/** `pid` and every live descendant (a server's workers or helpers, if it has any). */
function processTree(pid) {
  const children = new Map();
  for (const name of readdirSync("/proc")) {
    if (!/^\d+$/.test(name)) continue;
    let parent;
    try {
      parent = Number(statFields(name)[1]);
    } catch {
      continue; // gone meanwhile
    }
    if (!children.has(parent)) children.set(parent, []);
    children.get(parent).push(Number(name));
  }
  const tree = [];
  const todo = [pid];
  while (todo.length) {
    const current = todo.pop();
    tree.push(current);
    todo.push(...(children.get(current) ?? []));
  }
  return tree;
}

/** User + system CPU seconds of the process tree so far, including its reaped children. */
function cpuSeconds(pid, clockTicks) {
  let ticks = 0;
  for (const member of processTree(pid)) {
    let fields;
    try {
      fields = statFields(member);
    } catch {
      continue;
    }
    for (const value of fields.slice(11, 15)) ticks += Number(value); // utime, stime, cutime, cstime
  }
  return ticks / clockTicks;
}

// --- the subscribers ------------------------------------------------------------------------

const viewerName = (index) => `subscriber-${index}`;

// Every socket hands its messages to the current phase's handler, (subscriber, raw data) => void.
let onMessage = () => {};
let onClose = () => {};

function handshakeFailure(error) {
  const status = /^Unexpected server response: (\d+)$/.exec(error.message);
  return new Failed(status ? `server rejected WebSocket connection: HTTP ${status[1]}` : error.message);
}

/** One connection, initialised (naming its viewer when `viewer`) and subscribed to `room`. */
function subscribe(url, index, room, query, viewer) {
  return new Promise((resolve, reject) => {
    const ws = new LeanWebSocket(url, "graphql-transport-ws", { handshakeTimeout: 60_000 });
    const subscriber = { ws, index, joined: false, received: 0, closed: false, onClosed: () => {} };
    ws.onerror = (error) => reject(handshakeFailure(error)); // after the handshake, the close tells
    ws.onclose = (code) => {
      subscriber.closed = true;
      reject(new Failed(`a connection was closed (${code}) before its connection_ack`));
      onClose(subscriber);
      subscriber.onClosed();
    };
    ws.onopen = () => {
      ws.send(JSON.stringify({ type: "connection_init", ...(viewer ? { payload: { viewer: viewerName(index) } } : {}) }));
    };
    ws.onmessage = (data) => {
      const answer = JSON.parse(data);
      if (answer.type !== "connection_ack") {
        reject(new Failed(`connection_init was answered ${data}`));
        return;
      }
      ws.onmessage = (message) => onMessage(subscriber, message);
      ws.send(JSON.stringify({ id: "0", type: "subscribe", payload: { query, variables: { room } } }));
      resolve(subscriber);
    };
  });
}

async function openSubscriptions(url, room, count, query, viewer) {
  const subscribers = [];
  for (let start = 0; start < count; start += BATCH) {
    const batch = [];
    for (let index = start; index < Math.min(start + BATCH, count); index++) {
      batch.push(subscribe(url, index, room, query, viewer));
    }
    subscribers.push(...(await Promise.all(batch)));
  }
  return subscribers;
}

// --- publishing -----------------------------------------------------------------------------

async function send(httpUrl, document, room, text) {
  let response, body;
  try {
    response = await fetch(httpUrl, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ query: document, variables: { room, msg: text } }),
      signal: AbortSignal.timeout(SEND_TIMEOUT),
    });
    body = await response.text();
  } catch (error) {
    if (error.name === "TimeoutError") throw new PublishFailed(`a publish took over ${SEND_TIMEOUT / 1000} s`);
    throw error;
  }
  let answer;
  try {
    answer = JSON.stringify(JSON.parse(body));
  } catch {
    answer = null;
  }
  if (response.status !== 200 || answer !== '{"data":{"sendChatMessage":true}}') {
    throw new PublishFailed(`a publish was answered ${response.status} ${body.slice(0, 300)}`);
  }
}

/**
 * Publish until every subscription has seen a message: then all are joined. A publish is
 * repeated only when deliveries have stopped (subscriptions that joined after it), never while
 * the server is still delivering: at 10,000 subscriptions, a publish every fraction of a second
 * would bury a server under its own warm-up. Then waits for the leftover warm-up messages to
 * drain. Returns why publishes failed meanwhile (while thousands of subscriptions join, a
 * publish may time out and the next succeed).
 */
async function warmUp(subscribers, publish) {
  let pending = subscribers.length;
  const failures = [];
  onMessage = (subscriber, data) => {
    if (subscriber.joined) return;
    const message = JSON.parse(data);
    if (message.type === "next" && message.id === "0") {
      subscriber.joined = true;
      pending -= 1;
    }
  };
  // A connection closed before its first message can never join: no use publishing for 120 s.
  onClose = (subscriber) => {
    if (!subscriber.joined) throw new Failed("a connection was closed before its subscription received a message");
  };
  for (const subscriber of subscribers) {
    if (subscriber.closed) onClose(subscriber);
  }
  const tryPublish = async () => {
    try {
      await publish("warm-up");
    } catch (error) {
      if (!(error instanceof PublishFailed)) throw error;
      failures.push(error.message);
    }
  };
  const deadline = performance.now() + LIMIT;
  await tryPublish();
  let seenPending = pending;
  let progressAt = performance.now();
  while (pending && performance.now() < deadline) {
    await sleep(100);
    if (pending < seenPending) {
      seenPending = pending;
      progressAt = performance.now();
    } else if (performance.now() - progressAt > QUIET) {
      await tryPublish();
      progressAt = performance.now();
    }
  }
  if (pending) {
    throw new Failed(`${pending} subscriptions received no message within ${LIMIT / 1000} s`
      + (failures.length ? ` (${failures.length} publishes failed: ${failures.at(-1)})` : ""));
  }
  let lastMessageAt = 0;
  onMessage = () => {
    lastMessageAt = performance.now();
  };
  onClose = () => {};
  await sleep(1000);
  while (performance.now() - lastMessageAt < SETTLE && performance.now() < deadline) {
    await sleep(SETTLE - (performance.now() - lastMessageAt));
  }
  return failures;
}

// --- the fan-out ----------------------------------------------------------------------------

async function fanout(args, documents) {
  const room = `bench-${randomUUID().replaceAll("-", "").slice(0, 8)}`;
  const query = args.viewer ? documents.subscribeWithViewer : documents.subscribe;
  const subscribers = await openSubscriptions(args.wsUrl, room, args.subscribers, query, args.viewer);
  const publish = (text) => send(args.httpUrl, documents.send, room, text);
  const warmUpFailures = await warmUp(subscribers, publish);

  const latencies = new Float64Array(args.subscribers * args.messages); // ms, receipt less sending time
  let delivered = 0;
  let wrongViewer = 0;
  let lastReceipt = 0;
  let unfinished = subscribers.length; // neither all its messages received nor closed
  let finished;
  const allFinished = new Promise((resolve) => {
    finished = resolve;
  });
  const finish = () => {
    unfinished -= 1;
    if (!unfinished) finished();
  };
  onMessage = (subscriber, data) => {
    const now = performance.now();
    if (subscriber.received === args.messages) return;
    const message = JSON.parse(data);
    const event = message.type === "next" ? message.payload?.data?.joinChatRooms : undefined;
    if (!event) {
      fail(new Failed(`a subscription was answered ${String(data).slice(0, 300)}`));
      return;
    }
    const colon = event.message.indexOf(":");
    if (colon < 0) return; // a warm-up message over a second late: not one of the measured ones
    latencies[delivered++] = now - Number(event.message.slice(colon + 1));
    lastReceipt = Math.max(lastReceipt, now);
    if (args.viewer && event.viewer !== viewerName(subscriber.index)) {
      wrongViewer += 1; // one subscriber's result given to another
    }
    subscriber.received += 1;
    if (subscriber.received === args.messages) finish();
  };
  onClose = (subscriber) => {
    if (subscriber.received < args.messages) finish(); // what it did not receive is lost
  };
  for (const subscriber of subscribers) {
    if (subscriber.closed) onClose(subscriber);
  }

  const clockTicks = args.serverPid ? Number(execFileSync("getconf", ["CLK_TCK"], { encoding: "utf8" })) : 0;
  const serverCpuBefore = args.serverPid ? cpuSeconds(args.serverPid, clockTicks) : 0;
  const clientCpuBefore = process.cpuUsage();
  const firstSend = performance.now();
  for (let n = 0; n < args.messages; n++) {
    await publish(`m${n}:${performance.now()}`);
  }
  let limit;
  await Promise.race([allFinished, new Promise((resolve) => {
    limit = setTimeout(resolve, LIMIT); // what has not arrived by then is lost
  })]);
  clearTimeout(limit);
  const clientUsage = process.cpuUsage(clientCpuBefore); // before reading /proc, which is not the load
  const serverCpu = args.serverPid ? cpuSeconds(args.serverPid, clockTicks) - serverCpuBefore : 0;
  const clientCpu = (clientUsage.user + clientUsage.system) / 1e6;
  const window = ((lastReceipt || performance.now()) - firstSend) / 1000;
  onMessage = () => {};
  onClose = () => {};
  await closeAll(subscribers);

  const sorted = latencies.subarray(0, delivered).sort();
  return {
    delivered,
    expected: args.subscribers * args.messages,
    wrong_viewer: wrongViewer,
    warm_up_failures: warmUpFailures,
    deliveries_per_s: delivered / window,
    p50_ms: delivered ? sorted[Math.floor(delivered / 2)] : NaN,
    p99_ms: delivered ? sorted[Math.max(Math.floor(delivered * 0.99) - 1, 0)] : NaN,
    server_cpu_us_per_delivery: delivered ? serverCpu / delivered * 1e6 : NaN,
    // Near 100%, the figures are this client's limit rather than the server's.
    client_cpu_share: clientCpu / window,
  };
}

/** A clean close of every connection, as a leaving browser does; bounded like the handshake. */
async function closeAll(subscribers) {
  const closed = subscribers.filter(({ closed }) => !closed).map((subscriber) => new Promise((resolve) => {
    subscriber.onClosed = resolve;
    subscriber.ws.close(1000);
  }));
  await Promise.race([Promise.all(closed), sleep(10_000)]);
}

/** JSON as Python's json.dumps writes it, NaN included, for `python -m bench` to read back. */
function toJson(report) {
  return JSON.stringify(report, (_, value) => (Number.isNaN(value) ? "__NaN__" : value)).replaceAll('"__NaN__"', "NaN");
}

function fail(error) {
  // One line the bench reports as the contender's result: it did not cope with the load.
  const reason = error instanceof Failed ? error.message
    : error.cause ? `${error.message}: ${error.cause.message ?? error.cause}` : `${error.name}: ${error.message}`;
  process.stderr.write(`${reason.replaceAll("\n", " ")}\n`);
  process.exit(1);
}

function parse() {
  const { values, positionals } = parseArgs({
    allowPositionals: true,
    options: {
      subscribers: { type: "string", default: "500" },
      messages: { type: "string", default: "20" },
      "server-pid": { type: "string" },
      viewer: { type: "boolean", default: false },
    },
  });
  if (positionals.length !== 2) throw new Error("usage: fanout.js WS_URL HTTP_URL [options]");
  return {
    wsUrl: positionals[0],
    httpUrl: positionals[1],
    subscribers: Number(values.subscribers),
    messages: Number(values.messages),
    serverPid: values["server-pid"] ? Number(values["server-pid"]) : null,
    viewer: values.viewer,
  };
}

process.on("uncaughtException", fail); // a Failed thrown from a socket's event handler
try {
  const report = await fanout(parse(), operations());
  process.stdout.write(`${toJson(report)}\n`);
  process.exit(0);
} catch (error) {
  fail(error);
}
