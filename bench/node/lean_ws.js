// A WebSocket client (RFC 6455) for the fan-out load side, on a bare TCP socket: text messages
// only, no extensions. The `ws` package costs the client more per delivery than the servers
// under test spend (its stream-based receiver, a Buffer and an event per frame), and on a
// 2-core machine the client's CPU is taken from the servers'. This one hands each text frame to
// `onmessage` as a string straight from the socket's chunk. It answers pings and closes as the
// RFC asks, masks what it sends, and fails loudly on what it does not speak.

import { createHash, randomBytes } from "node:crypto";
import net from "node:net";

const GUID = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11";
const HEADER_LIMIT = 16 * 1024;

const OP_CONTINUATION = 0x0;
const OP_TEXT = 0x1;
const OP_BINARY = 0x2;
const OP_CLOSE = 0x8;
const OP_PING = 0x9;
const OP_PONG = 0xa;

/** A masked frame, as a client must send (RFC 6455, 5.3). */
function frame(opcode, payload) {
  const length = payload.length;
  const head = length < 126 ? 2 : length < 65536 ? 4 : 10;
  const out = Buffer.allocUnsafe(head + 4 + length);
  out[0] = 0x80 | opcode;
  if (length < 126) {
    out[1] = 0x80 | length;
  } else if (length < 65536) {
    out[1] = 0x80 | 126;
    out.writeUInt16BE(length, 2);
  } else {
    out[1] = 0x80 | 127;
    out.writeBigUInt64BE(BigInt(length), 2);
  }
  const mask = randomBytes(4);
  mask.copy(out, head);
  for (let i = 0; i < length; i++) out[head + 4 + i] = payload[i] ^ mask[i & 3];
  return out;
}

export class LeanWebSocket {
  /**
   * Connects at once. Set onopen, onmessage(text), onclose(code) and onerror(error) before the
   * next turn of the event loop. `handshakeTimeout` is in ms.
   */
  constructor(url, protocol, { handshakeTimeout = 60_000 } = {}) {
    const { hostname, port, pathname, search } = new URL(url);
    this.protocol = protocol;
    this.onopen = () => {};
    this.onmessage = () => {};
    this.onclose = () => {};
    this.onerror = () => {};
    this._open = false;
    this._closed = false;
    this._closeSent = false;
    this._pending = null; // bytes of an incomplete frame
    this._fragments = null; // a fragmented text message so far
    this._key = randomBytes(16).toString("base64");
    this._socket = net.connect({ host: hostname, port: Number(port) || 80, noDelay: true });
    this._timer = setTimeout(() => this._fail(new Error("WebSocket handshake timed out")), handshakeTimeout);
    this._socket.once("connect", () => {
      this._socket.write(
        `GET ${pathname}${search} HTTP/1.1\r\nHost: ${hostname}:${port}\r\nUpgrade: websocket\r\n`
        + `Connection: Upgrade\r\nSec-WebSocket-Key: ${this._key}\r\nSec-WebSocket-Version: 13\r\n`
        + `Sec-WebSocket-Protocol: ${protocol}\r\n\r\n`,
      );
    });
    this._socket.on("data", (chunk) => (this._open ? this._read(chunk) : this._handshake(chunk)));
    this._socket.on("error", (error) => this._fail(error));
    this._socket.on("close", () => this._finish(1006));
  }

  send(text) {
    if (!this._closeSent) this._socket.write(frame(OP_TEXT, Buffer.from(text)));
  }

  close(code = 1000) {
    if (this._closeSent || this._closed) return;
    this._closeSent = true;
    const payload = Buffer.allocUnsafe(2);
    payload.writeUInt16BE(code, 0);
    this._socket.write(frame(OP_CLOSE, payload));
  }

  _handshake(chunk) {
    this._pending = this._pending ? Buffer.concat([this._pending, chunk]) : chunk;
    const end = this._pending.indexOf("\r\n\r\n");
    if (end < 0) {
      if (this._pending.length > HEADER_LIMIT) this._fail(new Error("WebSocket handshake answer too long"));
      return;
    }
    const head = this._pending.toString("latin1", 0, end);
    const rest = this._pending.subarray(end + 4);
    this._pending = null;
    const [statusLine, ...lines] = head.split("\r\n");
    const status = /^HTTP\/1\.1 (\d{3})/.exec(statusLine)?.[1];
    if (status !== "101") {
      this._fail(new Error(`Unexpected server response: ${status ?? statusLine}`));
      return;
    }
    const headers = new Map(lines.map((line) => {
      const colon = line.indexOf(":");
      return [line.slice(0, colon).trim().toLowerCase(), line.slice(colon + 1).trim()];
    }));
    const accept = createHash("sha1").update(this._key + GUID).digest("base64");
    if (headers.get("sec-websocket-accept") !== accept) {
      this._fail(new Error("WebSocket handshake: wrong Sec-WebSocket-Accept"));
      return;
    }
    if (headers.get("sec-websocket-protocol") !== this.protocol) {
      this._fail(new Error(`WebSocket handshake: server chose subprotocol ${headers.get("sec-websocket-protocol")}`));
      return;
    }
    if (headers.has("sec-websocket-extensions")) {
      this._fail(new Error("WebSocket handshake: server negotiated an extension none was offered"));
      return;
    }
    clearTimeout(this._timer);
    this._open = true;
    this.onopen();
    if (rest.length) this._read(rest);
  }

  _read(chunk) {
    let buffer = this._pending ? Buffer.concat([this._pending, chunk]) : chunk;
    this._pending = null;
    let offset = 0;
    while (!this._closed) {
      const available = buffer.length - offset;
      if (available < 2) break;
      const first = buffer[offset];
      const second = buffer[offset + 1];
      if (second & 0x80) return this._fail(new Error("the server sent a masked frame"));
      if (first & 0x70) return this._fail(new Error("the server set a reserved bit"));
      let length = second & 0x7f;
      let start = offset + 2;
      if (length === 126) {
        if (available < 4) break;
        length = buffer.readUInt16BE(offset + 2);
        start += 2;
      } else if (length === 127) {
        if (available < 10) break;
        length = Number(buffer.readBigUInt64BE(offset + 2));
        start += 8;
      }
      const end = start + length;
      if (end > buffer.length) break;
      this._frame(first & 0x80, first & 0x0f, buffer, start, end);
      offset = end;
    }
    if (offset < buffer.length && !this._closed) this._pending = buffer.subarray(offset);
  }

  _frame(fin, opcode, buffer, start, end) {
    switch (opcode) {
      case OP_TEXT:
        if (fin) this.onmessage(buffer.toString("utf8", start, end));
        else this._fragments = [Buffer.from(buffer.subarray(start, end))];
        return;
      case OP_CONTINUATION:
        if (!this._fragments) return this._fail(new Error("a continuation frame without a message"));
        this._fragments.push(Buffer.from(buffer.subarray(start, end)));
        if (fin) {
          const text = Buffer.concat(this._fragments).toString("utf8");
          this._fragments = null;
          this.onmessage(text);
        }
        return;
      case OP_PING:
        this._socket.write(frame(OP_PONG, buffer.subarray(start, end)));
        return;
      case OP_PONG:
        return;
      case OP_CLOSE: {
        const code = end - start >= 2 ? buffer.readUInt16BE(start) : 1005;
        if (!this._closeSent) {
          this._closeSent = true;
          this._socket.write(frame(OP_CLOSE, buffer.subarray(start, Math.min(end, start + 2))));
        }
        this._socket.end();
        this._finish(code);
        return;
      }
      case OP_BINARY:
        return this._fail(new Error("the server sent a binary message"));
      default:
        return this._fail(new Error(`the server sent opcode ${opcode}`));
    }
  }

  _fail(error) {
    if (this._closed) return;
    clearTimeout(this._timer);
    this._socket.destroy();
    this.onerror(error);
    this._finish(1006);
  }

  _finish(code) {
    if (this._closed) return;
    this._closed = true;
    clearTimeout(this._timer);
    this.onclose(code);
  }
}
