// QWRealtime against a scripted socket: what it sends on each new connection.
import assert from "node:assert/strict";
import { test } from "node:test";

import { QWRealtime, SendRefused } from "../../realtime/static/qw-realtime.js";

function token(claims) {
  const part = (o) => Buffer.from(JSON.stringify(o)).toString("base64url");
  return `${part({ alg: "HS256" })}.${part(claims)}.sig`;
}

/** The sockets a client opened; each records what was sent and lets the test answer. */
function fakeSockets() {
  const sockets = [];
  class FakeWebSocket {
    constructor(url) {
      this.url = url;
      this.sent = [];
      sockets.push(this);
    }
    send(text) {
      this.sent.push(JSON.parse(text));
    }
    close() {}
    frame(obj) {
      this.onmessage?.({ data: JSON.stringify(obj) });
    }
    authenticate(lastSeq = 0) {
      this.frame({ type: "authenticated", user_id: 1, last_seq: lastSeq, heartbeat_interval: 30 });
    }
    drop(code = 1006) {
      this.onclose?.({ code });
    }
  }
  return { sockets, FakeWebSocket };
}

async function until(condition, what) {
  const deadline = Date.now() + 3000;
  while (!condition()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 5));
  }
}

function client(options = {}) {
  const { sockets, FakeWebSocket } = fakeSockets();
  const rt = new QWRealtime({
    token: token({ user_id: "1" }),
    url: "ws://test/ws/",
    WebSocketImpl: FakeWebSocket,
    backoffBaseMs: 10,
    restartJitterMs: [20, 40],
    ...options,
  });
  return { rt, sockets };
}

test("every new socket subscribes again and resumes from the last seq", async (t) => {
  const { rt, sockets } = client();
  t.after(() => rt.close());
  await until(() => sockets.length === 1, "first socket");
  sockets[0].authenticate(4);
  rt.send({ type: "subscribe", channel: "task:7" });
  sockets[0].frame({ type: "task_status_update", seq: 5, task_id: 7, status: "review" });
  sockets[0].drop();

  await until(() => sockets.length === 2, "reconnect");
  assert.match(sockets[1].url, /last_seq=5$/);
  sockets[1].authenticate(5);
  assert.deepEqual(sockets[1].sent, [{ type: "subscribe", channel: "task:7" }]);

  rt.send({ type: "unsubscribe", channel: "task:7" });
  sockets[1].drop();
  await until(() => sockets.length === 3, "second reconnect");
  sockets[2].authenticate(5);
  assert.deepEqual(sockets[2].sent, []);
});

test("a seq gap asks for a resume instead of emitting out of order", async (t) => {
  const { rt, sockets } = client();
  t.after(() => rt.close());
  const seen = [];
  rt.on("chat_message", (m) => seen.push(m.seq));
  await until(() => sockets.length === 1, "socket");
  sockets[0].authenticate(10);
  sockets[0].frame({ type: "chat_message", seq: 11, sender_id: 2 });
  sockets[0].frame({ type: "chat_message", seq: 13, sender_id: 2 });
  sockets[0].frame({ type: "chat_message", seq: 14, sender_id: 2 });
  assert.deepEqual(sockets[0].sent, [{ type: "resume", last_seq: 11 }]);
  for (const seq of [12, 13, 14]) sockets[0].frame({ type: "chat_message", seq, sender_id: 2 });
  sockets[0].frame({ type: "resumed", last_seq: 14, count: 3 });
  assert.deepEqual(seen, [11, 12, 13, 14]);
});

test("the outbox stays first-in first-out through a rate limit", async (t) => {
  const { rt, sockets } = client();
  t.after(() => rt.close());
  await until(() => sockets.length === 1, "socket");
  sockets[0].authenticate();
  const ws = sockets[0];
  const a = rt.send({ type: "chat_message", receiver_id: 2, content: "a" });
  const b = rt.send({ type: "chat_message", receiver_id: 2, content: "b" });
  assert.deepEqual(
    ws.sent.map((f) => f.content),
    ["a"],
  );
  ws.frame({ type: "error", code: "rate_limited", ref: a.client_msg_id, retry_after: 0.1 });
  rt.send({ type: "chat_message", receiver_id: 2, content: "c" });
  assert.deepEqual(
    ws.sent.map((f) => f.content),
    ["a"],
  );
  await until(() => ws.sent.length === 2, "the resend after retry_after");
  ws.frame({ type: "message_sent", client_msg_id: a.client_msg_id, message_id: 1 });
  ws.frame({ type: "message_sent", client_msg_id: b.client_msg_id, message_id: 2 });
  assert.deepEqual(
    ws.sent.map((f) => f.content),
    ["a", "a", "b", "c"],
  );
});

test("a refused message is reported once and the next one goes out", async (t) => {
  const { rt, sockets } = client();
  t.after(() => rt.close());
  const failed = [];
  rt.on("send_failed", (e) => failed.push(e.error.code));
  await until(() => sockets.length === 1, "socket");
  sockets[0].authenticate();
  const bad = rt.send({ type: "chat_message", receiver_id: 999, content: "to nobody" });
  rt.send({ type: "chat_message", receiver_id: 2, content: "to bob" });
  sockets[0].frame({ type: "error", code: "not_found", ref: bad.client_msg_id });
  assert.deepEqual(failed, ["not_found"]);
  assert.deepEqual(
    sockets[0].sent.map((f) => f.content),
    ["to nobody", "to bob"],
  );
  assert.throws(
    () => rt.send({ type: "chat_message", receiver_id: 2, content: "x".repeat(70000) }),
    (error) => error instanceof SendRefused && error.code === "too_large",
  );
  assert.equal(rt.pending().length, 1);
});

test("4012 waits a jittered moment; closes right after auth keep raising the backoff", async (t) => {
  const { rt, sockets } = client({ healthyMs: 60000 });
  t.after(() => rt.close());
  await until(() => sockets.length === 1, "socket");
  sockets[0].authenticate();
  const before = Date.now();
  sockets[0].drop(4012);
  assert.ok(rt.retryAt - before >= 20 && rt.retryAt - before <= 45);
  for (let n = 1; n <= 4; n += 1) {
    await until(() => sockets.length === n + 1, `attempt ${n + 1}`);
    sockets[n].authenticate();
    sockets[n].drop(1011);
  }
  assert.equal(rt.backoff.attempt, 4);
});

test("a refresh that meets a 503 is retried; only a 401 signs out", async (t) => {
  const answers = [{ status: 503 }, { status: 200, body: { access: token({ user_id: "1", n: 2 }) } }];
  const fetchImpl = async () => {
    const answer = answers.shift() ?? { status: 401 };
    return { ok: answer.status === 200, status: answer.status, json: async () => answer.body };
  };
  const { rt, sockets } = client({ refreshToken: "r", fetchImpl });
  t.after(() => rt.close());
  const authErrors = [];
  rt.on("auth_error", (e) => authErrors.push(e.reason));
  await until(() => sockets.length === 1, "socket");
  sockets[0].drop(4002);
  await until(() => sockets.length === 2, "reconnect after the second refresh");
  assert.deepEqual(authErrors, []);
  sockets[1].drop(4002);
  await until(() => authErrors.length === 1, "sign-out on 401");
  assert.deepEqual(authErrors, ["token_expired"]);
});

test("4011 (Redis or PostgreSQL down at connect) backs off, keeps signed in and resumes", async (t) => {
  const { rt, sockets } = client();
  t.after(() => rt.close());
  const authErrors = [];
  rt.on("auth_error", (e) => authErrors.push(e.reason));
  await until(() => sockets.length === 1, "socket");
  sockets[0].authenticate(3);
  sockets[0].frame({ type: "notification", seq: 4, notification_id: 1, title: "t" });
  sockets[0].drop(1006);
  for (let n = 1; n <= 3; n += 1) {
    await until(() => sockets.length === n + 1, `attempt ${n + 1}`);
    assert.match(sockets[n].url, /last_seq=4$/);
    sockets[n].drop(4011); // accepted, then closed before `authenticated`
  }
  assert.equal(rt.backoff.attempt, 4);
  await until(() => sockets.length === 5, "attempt after the outage");
  sockets[4].authenticate(4);
  assert.equal(rt.state, "open");
  assert.deepEqual(authErrors, []);
});
