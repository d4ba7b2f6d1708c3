// A fake transport for unit tests: a WebSocket the test plays the server of, a real
// QWRealtime (/static/qw-realtime.js) on top of it, and canned REST answers.
import { act } from "@testing-library/react";
import { QWRealtime } from "../../../realtime/static/qw-realtime.js";
import { clientFrameProblems } from "./schemas.js";

/** Frames the bindings sent that docs/asyncapi.yaml does not allow (the tests assert none). */
export const badFrames = [];

export class FakeSocket {
  static instances = [];

  constructor(url, protocols) {
    this.url = url;
    this.protocols = protocols;
    this.sent = [];
    this.closed = null;
    FakeSocket.instances.push(this);
  }

  send(text) {
    const frame = JSON.parse(text);
    badFrames.push(...clientFrameProblems(frame));
    this.sent.push(frame);
  }

  close(code = 1000) {
    this.closed = code;
  }

  /** The server sends a frame. */
  deliver(frame) {
    act(() => this.onmessage?.({ data: JSON.stringify(frame) }));
  }

  /** The server (or the network) ends the connection. */
  drop(code = 1006) {
    this.closed = code;
    act(() => this.onclose?.({ code }));
  }

  sentOf(type) {
    return this.sent.filter((frame) => frame.type === type);
  }
}

export function fakeToken(userId) {
  const claims = Buffer.from(JSON.stringify({ user_id: String(userId), exp: 4102444800 })).toString("base64url");
  return `e30.${claims}.signature`;
}

export function newClient(userId = 1, options = {}) {
  FakeSocket.instances = [];
  return new QWRealtime({
    token: fakeToken(userId),
    url: "ws://test/ws/",
    WebSocketImpl: FakeSocket,
    backoffBaseMs: 1,
    backoffCapMs: 2,
    healthyMs: 0,
    ...options,
  });
}

/** The client's current socket, once it made one. */
export async function socketOf(client) {
  for (let i = 0; i < 50 && !client.ws; i += 1) await act(() => new Promise((resolve) => setTimeout(resolve, 1)));
  if (!client.ws) throw new Error("the client never opened a socket");
  return client.ws;
}

export async function connected(client, { userId = 1, lastSeq = 0 } = {}) {
  const ws = await socketOf(client);
  ws.deliver({
    type: "authenticated",
    user_id: userId,
    last_seq: lastSeq,
    heartbeat_interval: 30,
    timestamp: "2026-12-06T00:00:00Z",
  });
  return ws;
}

/** REST answers by path; every call is recorded. */
export function fakeRest(routes) {
  const calls = [];
  const fetchJson = async (path, init = {}) => {
    calls.push({ path, method: init.method ?? "GET" });
    // Answer on a later task, like a network would (and inside the test's next act()).
    await new Promise((resolve) => setTimeout(resolve, 0));
    const answer = routes[path] ?? routes[path.split("?")[0]];
    if (answer === undefined) throw new Error(`no fake answer for ${path}`);
    return typeof answer === "function" ? answer(path, init) : structuredClone(answer);
  };
  return { fetchJson, calls };
}

let seq = 0;
export function chatFrame(fields) {
  seq += 1;
  return {
    type: "chat_message",
    seq,
    sender_id: 2,
    receiver_id: 1,
    content: `message ${fields.message_id}`,
    timestamp: "2026-12-06T00:00:00Z",
    client_msg_id: null,
    ...fields,
  };
}

export function historyRow(fields) {
  return {
    sender_id: 2,
    receiver_id: 1,
    room_id: null,
    content: `message ${fields.message_id}`,
    client_msg_id: null,
    timestamp: "2026-12-05T00:00:00Z",
    delivered_at: null,
    read_at: null,
    ...fields,
  };
}
