// QuantumWorks Realtime browser client (SPEC §8). A dependency-free ES module.
//
//   import { QWRealtime } from "/static/qw-realtime.js";
//   const rt = new QWRealtime({ token, refreshToken, onTokens: (t) => save(t) });
//   rt.on("chat_message", (frame) => show(frame));
//   rt.send({ type: "chat_message", receiver_id: 2, content: "hi" });  // → the frame, with client_msg_id
//
// Guarantees it keeps on its side of the wire:
// - every durable frame is emitted once and in seq order: a frame at or below the
//   last seq is dropped, a gap asks the server to `resume`, and a reconnect asks
//   for everything after the last seq (`last_seq=N`);
// - send() throws SendRefused for what the server could never accept (over the
//   64 KiB frame limit or SPEC §6's content limits), so nothing poisons the outbox;
// - a chat message stays in the outbox until acknowledged (`message_sent`, its own
//   echo) and is sent strictly in order; one the server refuses for good
//   (too_large, invalid_message, not_found, forbidden) leaves it with `send_failed`;
// - subscriptions are restored on every new socket;
// - with `persist` the outbox and last_seq live in IndexedDB, so a message typed
//   offline is sent once even if the tab is closed and opened again;
// - QWSharedRealtime (qw-shared.js) keeps one socket per browser.
//
// The logic that needs no browser is in qw-protocol.js (tested with node --test).

import {
  Backoff,
  ChangeOnce,
  Outbox,
  SendRefused,
  SeqTracker,
  Subscriptions,
  frameProblem,
  restartDelay,
} from "./qw-protocol.js";
import { IndexedDBStore } from "./qw-store.js";

export { SendRefused, frameProblem } from "./qw-protocol.js";
export { IndexedDBStore } from "./qw-store.js";

const EPHEMERAL_TYPES = new Set(["typing", "ping", "heartbeat"]);
const SEQ_WRITE_DELAY_MS = 250;

function defaultUrl() {
  const scheme = location.protocol === "https:" ? "wss:" : "ws:";
  return `${scheme}//${location.host}/ws/`;
}

export function newClientMsgId() {
  if (globalThis.crypto?.randomUUID) return crypto.randomUUID();
  // Non-secure contexts (plain http on a LAN address) have no randomUUID.
  const bytes = crypto.getRandomValues(new Uint8Array(16));
  return Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("");
}

/** The claims of a JWT, unverified (the server verifies; we only read `exp` and the user id). */
export function jwtClaims(token) {
  try {
    const part = token.split(".")[1].replace(/-/g, "+").replace(/_/g, "/");
    return JSON.parse(atob(part.padEnd(part.length + ((4 - (part.length % 4)) % 4), "=")));
  } catch {
    return {};
  }
}

export class QWRealtime {
  /**
   * @param {object} options
   * @param {string} options.token              access JWT
   * @param {string} [options.refreshToken]     refresh JWT: renews the access token on 4002
   * @param {(tokens:{access:string,refresh:string})=>void} [options.onTokens]  new tokens, to store
   * @param {string} [options.url]              WebSocket URL (default: this origin's /ws/)
   * @param {boolean|object} [options.persist]  true: IndexedDB per user; or a store (see qw-store.js)
   * @param {number} [options.pingIntervalMs]   default: the server's heartbeat_interval
   * @param {number} [options.handshakeTimeoutMs]  an attempt that is not authenticated by then is dropped
   * @param {number} [options.healthyMs]        how long a connection must last to reset the backoff
   */
  constructor({
    token,
    refreshToken = null,
    onTokens = null,
    url = null,
    refreshUrl = "/api/auth/token/refresh/",
    persist = false,
    autoConnect = true,
    backoffBaseMs = 1000,
    backoffCapMs = 30000,
    healthyMs = 10000,
    pingIntervalMs = null,
    handshakeTimeoutMs = 10000,
    restartJitterMs = [1000, 2000],
    WebSocketImpl = globalThis.WebSocket,
    fetchImpl = (...args) => globalThis.fetch(...args),
  } = {}) {
    this.url = url ?? defaultUrl();
    this.token = token;
    this.refreshToken = refreshToken;
    this.onTokens = onTokens;
    this.refreshUrl = refreshUrl;
    this.backoff = new Backoff({ baseMs: backoffBaseMs, capMs: backoffCapMs, healthyMs });
    this.pingIntervalMs = pingIntervalMs;
    this.heartbeatMs = pingIntervalMs ?? 30000;
    this.handshakeTimeoutMs = handshakeTimeoutMs;
    this.restartJitterMs = restartJitterMs;
    this.WebSocketImpl = WebSocketImpl;
    this.fetch = fetchImpl;
    const claimed = jwtClaims(token).user_id; // simplejwt writes it as a string
    this.userId = claimed == null ? null : Number(claimed);
    this.state = "closed";
    this.seq = new SeqTracker();
    this.outbox = new Outbox();
    this.subscriptions = new Subscriptions();
    this.taskChanges = new ChangeOnce();
    this.queue = []; // other frames sent while offline
    this.listeners = new Map();
    this.ws = null;
    this.stopped = false;
    this.timers = {};
    this.retryAt = null; // when the next attempt starts (for "retrying in N s")
    this.store =
      persist === true
        ? new IndexedDBStore(`user:${this.userId}`)
        : persist && typeof persist.saveSeq === "function"
          ? persist
          : null;
    this.ready = this.store ? this.restore() : Promise.resolve();
    if (autoConnect) this.connect();
  }

  get lastSeq() {
    return this.seq.last;
  }

  set lastSeq(value) {
    this.seq.last = value;
  }

  // --- public API ---------------------------------------------------------

  /** Listen to a frame type, `*` (every frame) or a client event: `state`,
   *  `auth_error`, `outbox`, `send_failed`, `tokens`, `retry`. Returns an unsubscribe function. */
  on(type, fn) {
    if (!this.listeners.has(type)) this.listeners.set(type, new Set());
    this.listeners.get(type).add(fn);
    return () => this.listeners.get(type)?.delete(fn);
  }

  /** Send a frame; queued while offline. A chat_message gets a client_msg_id and
   *  stays in the outbox until acknowledged. Returns the frame as sent; throws
   *  SendRefused for a frame the server could never accept. */
  send(frame) {
    const out = { ...frame };
    if (out.type === "chat_message") out.client_msg_id ||= newClientMsgId();
    const problem = frameProblem(out);
    if (problem) throw new SendRefused(problem, out);
    if (out.type === "chat_message") {
      this.outbox.add(out);
      this.store?.putOutbox(out);
      this.changedOutbox();
      this.flush();
      return out;
    }
    if (this.subscriptions.track(out)) {
      if (this.state === "open") this.transmit(out);
      return out;
    }
    if (this.state === "open") this.transmit(out);
    else if (!EPHEMERAL_TYPES.has(out.type)) this.queue.push(out);
    return out;
  }

  /** A chat message another tab already stored in the shared outbox. */
  adopt(frame) {
    if (this.outbox.has(frame.client_msg_id) || frameProblem(frame)) return;
    this.outbox.add(frame);
    this.changedOutbox();
    this.flush();
  }

  /** Resolves when the state so far is written to the store. */
  async saved() {
    this.writeSeqNow();
    await this.store?.settled();
  }

  /** Unacknowledged chat messages, oldest first. */
  pending() {
    return this.outbox.frames();
  }

  async connect() {
    this.stopped = false;
    clearTimeout(this.timers.reconnect);
    this.retryAt = null;
    if (this.ws) return;
    this.setState("connecting");
    await this.ready;
    if (this.stopped || this.ws) return;
    const url = new URL(this.url, globalThis.location?.href);
    if (this.seq.last !== null) url.searchParams.set("last_seq", String(this.seq.last));
    // The token travels as a subprotocol, not in the URL: URLs end up in logs.
    const ws = new this.WebSocketImpl(url.toString(), ["bearer", this.token]);
    this.ws = ws;
    ws.onmessage = (message) => this.receive(ws, message.data);
    ws.onclose = (event) => this.closed(ws, event.code);
    // A server that takes the TCP connection and never answers must not hang us.
    this.timers.handshake = setTimeout(() => this.abandon(ws), this.handshakeTimeoutMs);
  }

  /** Close for good (no reconnect). */
  close() {
    this.stopped = true;
    for (const timer of Object.values(this.timers)) clearTimeout(timer);
    const ws = this.ws;
    this.drop();
    if (ws) ws.close(1000);
    this.writeSeqNow();
    this.setState("closed");
  }

  // --- internals ----------------------------------------------------------

  emit(type, payload) {
    for (const key of [type, "*"]) {
      for (const fn of this.listeners.get(key) || []) {
        try {
          fn(payload);
        } catch (error) {
          console.error("qw-realtime listener failed", error);
        }
      }
    }
  }

  setState(state) {
    if (this.state === state) return;
    this.state = state;
    this.emit("state", { type: "state", state });
  }

  transmit(frame) {
    try {
      this.ws.send(JSON.stringify(frame));
    } catch {
      // The socket is going away; the outbox resends chat messages after reconnect.
    }
  }

  /** Send what the outbox allows now; if it is held (rate_limited), try again when the hold ends. */
  flush() {
    if (this.state !== "open") return;
    for (const frame of this.outbox.take(Date.now())) this.transmit(frame);
    const wait = this.outbox.pausedFor(Date.now());
    clearTimeout(this.timers.outbox);
    if (wait > 0) this.timers.outbox = setTimeout(() => this.flush(), wait);
  }

  /** Any frame proves the socket alive; silence for two intervals proves it dead (SPEC §8). */
  heard(ws) {
    clearTimeout(this.timers.dead);
    this.timers.dead = setTimeout(() => this.abandon(ws), 2 * this.heartbeatMs);
  }

  abandon(ws) {
    if (ws !== this.ws) return;
    this.closed(ws, 4000);
    try {
      ws.close();
    } catch {
      // Already closing.
    }
  }

  receive(ws, data) {
    if (ws !== this.ws) return;
    let frame;
    try {
      frame = JSON.parse(data);
    } catch {
      return;
    }
    if (this.state === "open") this.heard(ws);
    if (typeof frame.seq === "number") {
      const verdict = this.seq.accept(frame.seq);
      if (verdict === "duplicate") return;
      if (verdict === "gap") {
        // A frame got lost between the server and us: the replay brings it and this one, in order.
        const from = this.seq.resumeFrom();
        if (from !== null) this.transmit({ type: "resume", last_seq: from });
        return;
      }
      this.scheduleSeqWrite();
    }
    switch (frame.type) {
      case "authenticated":
        this.opened(ws, frame);
        break;
      case "resumed":
        this.seq.settled();
        break;
      case "resync_required":
        // The resume point is past retention: start again from the server's seq;
        // the application refetches over REST.
        this.seq.last = Math.max(this.seq.last ?? 0, this.serverSeq ?? 0);
        this.seq.settled();
        this.scheduleSeqWrite();
        break;
      case "message_sent":
        this.acknowledge(frame.client_msg_id);
        break;
      case "chat_message":
        // Our own echo proves the message was stored even if its ack was lost.
        if (frame.sender_id === this.userId) this.acknowledge(frame.client_msg_id);
        break;
      case "task_status_update":
        if (!this.taskChanges.first(frame)) return;
        break;
      case "error":
        this.refused(frame);
        break;
    }
    this.emit(frame.type, frame);
  }

  opened(ws, frame) {
    clearTimeout(this.timers.handshake);
    this.userId = frame.user_id;
    this.serverSeq = frame.last_seq;
    // First connection ever: history comes over REST; live events start after this seq.
    if (this.seq.last === null) {
      this.seq.last = frame.last_seq;
      this.scheduleSeqWrite();
    }
    this.seq.settled();
    this.backoff.opened(Date.now());
    if (frame.heartbeat_interval && this.pingIntervalMs === null) this.heartbeatMs = frame.heartbeat_interval * 1000;
    this.setState("open");
    this.heard(ws);
    this.startPing();
    this.scheduleTokenRenewal();
    for (const subscribe of this.subscriptions.frames()) this.transmit(subscribe);
    this.outbox.unsend();
    this.flush();
    for (const other of this.queue.splice(0)) this.transmit(other);
  }

  acknowledge(clientMsgId) {
    if (clientMsgId && this.outbox.remove(clientMsgId)) {
      this.store?.deleteOutbox(clientMsgId);
      this.changedOutbox();
      this.flush();
    }
  }

  refused(frame) {
    if (frame.code === "forbidden" && !frame.ref) return;
    const retryAfterMs = Math.max(0.1, frame.retry_after || 1) * 1000;
    const dropped = frame.ref && this.outbox.refused(frame.ref, frame.code, { now: Date.now(), retryAfterMs });
    if (dropped) {
      this.store?.deleteOutbox(frame.ref);
      this.changedOutbox();
      this.emit("send_failed", { type: "send_failed", frame: dropped, error: frame });
    }
    this.flush();
  }

  changedOutbox() {
    this.emit("outbox", { type: "outbox", pending: this.pending() });
  }

  startPing() {
    clearInterval(this.timers.ping);
    this.timers.ping = setInterval(() => this.transmit({ type: "ping" }), this.heartbeatMs);
  }

  drop() {
    clearInterval(this.timers.ping);
    clearTimeout(this.timers.dead);
    clearTimeout(this.timers.handshake);
    clearTimeout(this.timers.outbox);
    if (this.ws) this.ws.onmessage = this.ws.onclose = null;
    this.ws = null;
  }

  closed(ws, code) {
    if (ws !== this.ws) return;
    this.drop();
    this.backoff.closed(Date.now());
    if (this.stopped) return this.setState("closed");
    if (code === 4001 || code === 4003) {
      this.stopped = true;
      this.setState("closed");
      const reason = code === 4001 ? "invalid_token" : "user_inactive";
      this.emit("auth_error", { type: "auth_error", code, reason });
      return;
    }
    this.setState("connecting");
    if (code === 4002) return this.renewThenConnect();
    if (code === 4012) {
      // The node is restarting: another takes us, but not all its clients in the same millisecond.
      const [minMs, maxMs] = this.restartJitterMs;
      return this.retryIn(restartDelay({ minMs, maxMs }), () => this.connect());
    }
    this.retryIn(this.backoff.next(), () => this.connect());
  }

  retryIn(delay, fn) {
    clearTimeout(this.timers.reconnect);
    this.retryAt = Date.now() + delay;
    this.emit("retry", { type: "retry", at: this.retryAt });
    this.timers.reconnect = setTimeout(fn, delay);
  }

  async renewThenConnect() {
    const outcome = await this.refresh();
    if (this.stopped) return;
    if (outcome === "ok") return this.connect();
    if (outcome === "retry") return this.retryIn(this.backoff.next(), () => this.renewThenConnect());
    this.stopped = true;
    this.setState("closed");
    this.emit("auth_error", { type: "auth_error", code: 4002, reason: "token_expired" });
  }

  /** "ok", "denied" (the refresh token is refused: sign in again) or "retry" (5xx, network). */
  async refresh() {
    if (!this.refreshToken) return "denied";
    let response;
    try {
      response = await this.fetch(this.refreshUrl, {
        method: "POST",
        headers: { "Content-Type": "application/json" },
        body: JSON.stringify({ refresh: this.refreshToken }),
      });
    } catch {
      return "retry";
    }
    if (response.status === 400 || response.status === 401) return "denied";
    if (!response.ok) return "retry";
    const body = await response.json();
    this.token = body.access;
    if (body.refresh) this.refreshToken = body.refresh;
    const tokens = { access: this.token, refresh: this.refreshToken };
    this.onTokens?.(tokens);
    this.emit("tokens", { type: "tokens", ...tokens });
    return "ok";
  }

  /** Renew the access token shortly before it expires and hand it to the open socket,
   *  so the server never has to close it with 4002. */
  scheduleTokenRenewal(delay = null) {
    clearTimeout(this.timers.expiry);
    const exp = jwtClaims(this.token).exp;
    if (!exp || !this.refreshToken) return;
    const wait = delay ?? Math.max(0, exp * 1000 - Date.now() - 30000);
    this.timers.expiry = setTimeout(async () => {
      const outcome = await this.refresh();
      if (outcome === "ok" && this.state === "open") {
        this.transmit({ type: "authenticate", token: this.token });
        this.scheduleTokenRenewal();
      } else if (outcome === "retry") {
        // Until the server closes with 4002 the socket works; keep trying.
        this.scheduleTokenRenewal(Math.min(5000, this.backoff.ceiling()));
      }
    }, wait);
  }

  async restore() {
    try {
      const { lastSeq, outbox } = await this.store.load();
      if (typeof lastSeq === "number") this.seq.last = Math.max(this.seq.last ?? 0, lastSeq);
      for (const frame of outbox) {
        // A message an older client queued that the server can never take must not block the rest.
        const problem = frameProblem(frame);
        if (problem) {
          this.store.deleteOutbox(frame.client_msg_id);
          this.emit("send_failed", { type: "send_failed", frame, error: { type: "error", ...problem } });
        } else this.outbox.add(frame);
      }
      if (this.outbox.size) this.changedOutbox();
    } catch (error) {
      console.warn("qw-realtime: could not read saved state", error);
    }
  }

  /** last_seq moves with every durable frame: write it once per burst, not per frame. */
  scheduleSeqWrite() {
    if (!this.store || this.timers.seqWrite) return;
    this.timers.seqWrite = setTimeout(() => this.writeSeqNow(), SEQ_WRITE_DELAY_MS);
  }

  writeSeqNow() {
    clearTimeout(this.timers.seqWrite);
    this.timers.seqWrite = null;
    if (this.store && this.seq.last !== null) this.store.saveSeq(this.seq.last);
  }
}
