// The parts of the QuantumWorks client that need no browser: limits, backoff,
// sequence tracking, the outbox, subscriptions. Plain classes over plain data,
// so `node --test` exercises them (tests/js/) and qw-realtime.js wires them to
// a WebSocket, timers and IndexedDB.

/** SPEC §5/§6: the server's frame limit and the content limits of a chat message. */
export const MAX_FRAME_BYTES = 64 * 1024;
export const MAX_CONTENT_CHARS = 10_000;
export const MAX_CONTENT_BYTES = 10 * 1024;
// The same characters the server removes (chat/services.py).
// biome-ignore lint/suspicious/noControlCharactersInRegex: matching control characters is the point
const CONTROL_CHARS = /[\u0000-\u0008\u000b-\u001f\u007f-\u009f]/g;

/** Errors after which the server will never accept the message: drop it from the outbox. */
export const PERMANENT_ERRORS = new Set([
  "too_large",
  "invalid_message",
  "not_found",
  "forbidden",
  "invalid_json",
  "unknown_type",
]);

const encoder = new TextEncoder();

export function utf8Length(text) {
  return encoder.encode(text).length;
}

/** Why the server would refuse this frame, as an SPEC §5 error ({code, message}), or null. */
export function frameProblem(frame) {
  if (frame.type === "chat_message") {
    if (typeof frame.content !== "string") return { code: "invalid_message", message: "The message has no text." };
    const content = frame.content.replace(CONTROL_CHARS, "").trim();
    if (!content) return { code: "invalid_message", message: "The message is empty." };
    const chars = [...content].length;
    if (chars > MAX_CONTENT_CHARS) {
      return {
        code: "too_large",
        message: `The message is ${chars.toLocaleString("en")} characters long; the limit is ${MAX_CONTENT_CHARS.toLocaleString("en")}.`,
      };
    }
    if (utf8Length(content) > MAX_CONTENT_BYTES) {
      return { code: "too_large", message: `The message is over ${MAX_CONTENT_BYTES / 1024} KiB; shorten it.` };
    }
  }
  if (utf8Length(JSON.stringify(frame)) > MAX_FRAME_BYTES) {
    return { code: "too_large", message: "The frame is over the 64 KiB limit." };
  }
  return null;
}

/** The error send() throws for a frame that can never be sent. */
export class SendRefused extends Error {
  constructor(problem, frame) {
    super(problem.message);
    this.name = "SendRefused";
    this.code = problem.code;
    this.frame = frame;
  }
}

/**
 * Reconnect delays: exponential with full jitter (SPEC §8: 1 s base, 30 s cap).
 * The exponent is reset only once a connection has stayed up for `healthyMs`:
 * a server that accepts and closes at once must not be hit at the base rate.
 */
export class Backoff {
  constructor({ baseMs = 1000, capMs = 30000, healthyMs = 10000, random = Math.random } = {}) {
    this.baseMs = baseMs;
    this.capMs = capMs;
    this.healthyMs = healthyMs;
    this.random = random;
    this.attempt = 0;
    this.openedAt = null;
  }

  /** The connection is authenticated. */
  opened(now) {
    this.openedAt = now;
  }

  /** The connection ended; forget the failures only if it was healthy long enough. */
  closed(now) {
    if (this.openedAt !== null && now - this.openedAt >= this.healthyMs) this.attempt = 0;
    this.openedAt = null;
  }

  /** The ceiling of the next delay, before jitter. */
  ceiling() {
    return Math.min(this.capMs, this.baseMs * 2 ** this.attempt);
  }

  /** The next delay: random in [0, ceiling); each call raises the ceiling. */
  next() {
    const delay = this.random() * this.ceiling();
    this.attempt += 1;
    return delay;
  }
}

/** A delay in [minMs, maxMs): spreads the clients of a restarting node (4012). */
export function restartDelay({ minMs = 0, maxMs = 2000, random = Math.random } = {}) {
  return minMs + random() * (maxMs - minMs);
}

/**
 * The per-user sequence of durable frames (SPEC §4.2). `accept(seq)` answers
 * "new" (the next one: take it), "duplicate" (seen: drop it) or "gap" (one is
 * missing: drop it and ask for a `resume`; the replay brings both, in order).
 */
export class SeqTracker {
  constructor(last = null) {
    this.last = last;
    this.resuming = false;
  }

  accept(seq) {
    if (this.last === null || seq === this.last + 1) {
      this.last = seq;
      return "new";
    }
    if (seq <= this.last) return "duplicate";
    return "gap";
  }

  /** The resume point to ask for on a gap, or null when a resume is already under way. */
  resumeFrom() {
    if (this.resuming) return null;
    this.resuming = true;
    return this.last;
  }

  /** A connection opened with last_seq, or a `resumed` / `resync_required` arrived. */
  settled() {
    this.resuming = false;
  }
}

/**
 * Unacknowledged chat messages, oldest first, sent strictly in order: at most
 * `window` are in flight, and a refusal that may pass later (rate_limited,
 * server_error) holds the whole queue, so no later message overtakes it.
 */
export class Outbox {
  constructor({ window = 1 } = {}) {
    this.window = window;
    this.entries = new Map(); // client_msg_id → {frame, sent}
    this.pausedUntil = 0;
  }

  get size() {
    return this.entries.size;
  }

  has(id) {
    return this.entries.has(id);
  }

  add(frame) {
    if (!this.entries.has(frame.client_msg_id)) this.entries.set(frame.client_msg_id, { frame, sent: false });
  }

  /** Acknowledged (or refused for good): returns the frame if it was pending. */
  remove(id) {
    const entry = this.entries.get(id);
    if (!entry) return null;
    this.entries.delete(id);
    return entry.frame;
  }

  frames() {
    return [...this.entries.values()].map((entry) => entry.frame);
  }

  /** A new socket: nothing is in flight on it. */
  unsend() {
    for (const entry of this.entries.values()) entry.sent = false;
  }

  /** The frames to transmit now, in order, marked in flight. */
  take(now) {
    if (now < this.pausedUntil) return [];
    const out = [];
    let inFlight = 0;
    for (const entry of this.entries.values()) {
      if (entry.sent) inFlight += 1;
      else if (inFlight + out.length < this.window) out.push(entry);
      else break;
    }
    for (const entry of out) entry.sent = true;
    return out.map((entry) => entry.frame);
  }

  /** Milliseconds until the pause ends (0: not paused). */
  pausedFor(now) {
    return Math.max(0, this.pausedUntil - now);
  }

  /**
   * The server refused `id` with `code`. Returns the frame when it is dropped for
   * good (the caller shows it as not sent), otherwise null (it will be resent).
   */
  refused(id, code, { now, retryAfterMs = 1000 }) {
    if (!this.entries.has(id)) return null;
    if (PERMANENT_ERRORS.has(code)) return this.remove(id);
    this.pausedUntil = Math.max(this.pausedUntil, now + retryAfterMs);
    this.unsend();
    return null;
  }
}

/** The channels this client asked for; every new socket subscribes to them again. */
export class Subscriptions {
  constructor() {
    this.channels = new Set();
  }

  /** Track a subscribe/unsubscribe frame; true if it was one. */
  track(frame) {
    if (frame.type === "subscribe" && typeof frame.channel === "string") this.channels.add(frame.channel);
    else if (frame.type === "unsubscribe") this.channels.delete(frame.channel);
    else return false;
    return true;
  }

  /** `subscribed` can be refused later (forbidden): forget what the server will not give. */
  forget(channel) {
    this.channels.delete(channel);
  }

  frames() {
    return [...this.channels].map((channel) => ({ type: "subscribe", channel }));
  }
}

/**
 * A status change reaches a participant twice: the durable per-user copy (with
 * seq) and the `task:`/`project:` group copy (without). Emit each change once.
 */
export class ChangeOnce {
  constructor(limit = 500) {
    this.limit = limit;
    this.seen = new Set();
  }

  first(update) {
    const key = `${update.task_id}|${update.previous_status}|${update.status}|${update.timestamp}`;
    if (this.seen.has(key)) return false;
    this.seen.add(key);
    if (this.seen.size > this.limit) this.seen.delete(this.seen.values().next().value);
    return true;
  }
}

/**
 * Where a message goes in a conversation shown in server order: before the
 * first shown message with a larger id; messages without an id yet (in the
 * outbox) stay last, in the order they were written. Returns an index.
 */
export function insertionIndex(ids, id) {
  if (id == null) return ids.length;
  for (let i = 0; i < ids.length; i += 1) {
    if (ids[i] == null || ids[i] > id) return i;
  }
  return ids.length;
}
