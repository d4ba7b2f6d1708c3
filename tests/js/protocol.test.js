// The client logic that needs no browser (realtime/static/qw-protocol.js).
import assert from "node:assert/strict";
import { test } from "node:test";

import {
  Backoff,
  ChangeOnce,
  MAX_CONTENT_CHARS,
  Outbox,
  SeqTracker,
  Subscriptions,
  frameProblem,
  insertionIndex,
  restartDelay,
} from "../../realtime/static/qw-protocol.js";

const chat = (id, content = `m${id}`) => ({ type: "chat_message", receiver_id: 2, content, client_msg_id: id });

test("a paste over the limits is refused before it reaches the outbox", () => {
  assert.equal(frameProblem(chat("a", "x".repeat(72 * 1024))).code, "too_large");
  assert.equal(frameProblem(chat("a", "é".repeat(6000))).code, "too_large"); // 12 KB of UTF-8
  assert.equal(frameProblem(chat("a", " \u0001 \n")).code, "invalid_message");
  assert.equal(frameProblem({ type: "read_receipt", message_id: 1, pad: "x".repeat(70000) }).code, "too_large");
  assert.equal(frameProblem(chat("a", "y".repeat(MAX_CONTENT_CHARS))), null);
  assert.equal(frameProblem({ type: "typing", receiver_id: 2 }), null);
});

test("backoff grows while connections die young and resets after a healthy one", () => {
  const backoff = new Backoff({ baseMs: 100, capMs: 1000, healthyMs: 500, random: () => 0.999 });
  const ceilings = [];
  for (let t = 0; t < 5; t += 1) {
    backoff.opened(t * 10);
    backoff.closed(t * 10 + 5); // closed right after auth
    ceilings.push(backoff.ceiling());
    backoff.next();
  }
  assert.deepEqual(ceilings, [100, 200, 400, 800, 1000]);
  backoff.opened(1000);
  backoff.closed(1600);
  assert.equal(backoff.ceiling(), 100);
  assert.ok(backoff.next() < 100);
});

test("4012 reconnects are spread over the jitter window", () => {
  const delays = [0, 0.5, 0.999].map((r) => restartDelay({ minMs: 1000, maxMs: 2000, random: () => r }));
  assert.deepEqual(delays.map(Math.floor), [1000, 1500, 1999]);
});

test("seq: next is taken, old is dropped, a gap asks for one resume", () => {
  const seq = new SeqTracker(5);
  assert.equal(seq.accept(6), "new");
  assert.equal(seq.accept(6), "duplicate");
  assert.equal(seq.accept(3), "duplicate");
  assert.equal(seq.accept(8), "gap");
  assert.equal(seq.last, 6);
  assert.equal(seq.resumeFrom(), 6);
  assert.equal(seq.resumeFrom(), null); // one resume at a time
  assert.equal(seq.accept(7), "new");
  seq.settled();
  assert.equal(seq.resumeFrom(), 7);
});

test("outbox sends one at a time in order and a rate limit holds the whole queue", () => {
  const outbox = new Outbox({ window: 1 });
  for (const id of ["a", "b", "c"]) outbox.add(chat(id));
  assert.deepEqual(
    outbox.take(0).map((f) => f.client_msg_id),
    ["a"],
  );
  assert.deepEqual(outbox.take(0), []); // a is in flight
  assert.equal(outbox.refused("a", "rate_limited", { now: 0, retryAfterMs: 1000 }), null);
  outbox.add(chat("d")); // typed during the hold
  assert.deepEqual(outbox.take(500), []);
  assert.equal(outbox.pausedFor(500), 500);
  assert.deepEqual(
    outbox.take(1000).map((f) => f.client_msg_id),
    ["a"],
  );
  outbox.remove("a");
  assert.deepEqual(
    outbox.take(1000).map((f) => f.client_msg_id),
    ["b"],
  );
  assert.deepEqual(
    outbox.frames().map((f) => f.client_msg_id),
    ["b", "c", "d"],
  );
});

test("a message refused for good leaves the outbox and never blocks the rest", () => {
  const outbox = new Outbox();
  outbox.add(chat("bad"));
  outbox.add(chat("good"));
  outbox.take(0);
  for (const code of ["too_large", "invalid_message", "not_found", "forbidden"]) {
    outbox.add(chat(code));
    assert.equal(outbox.refused(code, code, { now: 0 }).client_msg_id, code);
  }
  assert.equal(outbox.refused("bad", "not_found", { now: 0 }).client_msg_id, "bad");
  assert.deepEqual(
    outbox.take(0).map((f) => f.client_msg_id),
    ["good"],
  );
});

test("a new socket resends what was in flight on the old one", () => {
  const outbox = new Outbox({ window: 2 });
  for (const id of ["a", "b", "c"]) outbox.add(chat(id));
  assert.equal(outbox.take(0).length, 2);
  outbox.unsend();
  assert.deepEqual(
    outbox.take(0).map((f) => f.client_msg_id),
    ["a", "b"],
  );
});

test("subscriptions are kept until unsubscribed", () => {
  const subs = new Subscriptions();
  assert.equal(subs.track({ type: "subscribe", channel: "task:1" }), true);
  subs.track({ type: "subscribe", channel: "project:2" });
  subs.track({ type: "subscribe", channel: "task:1" });
  subs.track({ type: "unsubscribe", channel: "project:2" });
  assert.equal(subs.track({ type: "read_receipt", message_id: 1 }), false);
  assert.deepEqual(subs.frames(), [{ type: "subscribe", channel: "task:1" }]);
});

test("a task change reaching us as a group copy and a per-user copy counts once", () => {
  const once = new ChangeOnce(2);
  const change = { task_id: 1, previous_status: "open", status: "in_progress", timestamp: "t1" };
  assert.equal(once.first({ ...change, seq: 4 }), true);
  assert.equal(once.first(change), false);
  assert.equal(once.first({ ...change, timestamp: "t2" }), true);
});

test("messages are placed by server id, unsent ones last", () => {
  assert.equal(insertionIndex([3, 5, 9], 4), 1);
  assert.equal(insertionIndex([3, 5, 9], 10), 3);
  assert.equal(insertionIndex([3, 5, null], 7), 2);
  assert.equal(insertionIndex([3, null], null), 2);
  assert.equal(insertionIndex([], 1), 0);
});
