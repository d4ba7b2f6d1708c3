// QuantumWorks Realtime browser client (SPEC §8). A dependency-free ES module.
//
//   import { QWRealtime } from "/static/qw-realtime.js";
//   const rt = new QWRealtime({ token, refreshToken, onTokens: (t) => save(t) });
//   rt.on("chat_message", (frame) => show(frame));
//   rt.send({ type: "chat_message", receiver_id: 2, content: "hi" });  // → client_msg_id
//
// Guarantees it keeps on its side of the wire:
// - every durable frame is emitted once: frames with seq ≤ the last seen are dropped,
//   and a reconnect asks for everything after it (`last_seq=N`);
// - a chat message stays in the outbox, and is resent after every reconnect with
//   its client_msg_id, until the server acknowledges it (`message_sent`, a
//   duplicate counts) or its own echo arrives; the server deduplicates resends;
// - with `persist` the outbox and last_seq live in IndexedDB, so a message typed
//   offline is sent once even if the tab is closed and opened again;
// - QWSharedRealtime (same API) keeps one socket per browser: the tabs elect a
//   leader with a Web Lock and share its frames over a BroadcastChannel.

const DURABLE_RETRYABLE_ERRORS = new Set(["server_error"]);
const EPHEMERAL_TYPES = new Set(["typing", "ping", "heartbeat"]);

function defaultUrl() {
  const scheme = location.protocol === "https:" ? "wss:" : "ws:";
  return `${scheme}//${location.host}/ws/`;
}

function newClientMsgId() {
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

/** last_seq and the outbox of one user, kept in IndexedDB. */
export class IndexedDBStore {
  constructor(key, { dbName = "qw-realtime" } = {}) {
    this.key = key;
    this.dbName = dbName;
    this.db = null;
  }

  async open() {
    if (this.db) return this.db;
    this.db = await new Promise((resolve, reject) => {
      const request = indexedDB.open(this.dbName, 1);
      request.onupgradeneeded = () => request.result.createObjectStore("state");
      request.onsuccess = () => resolve(request.result);
      request.onerror = () => reject(request.error);
    });
    return this.db;
  }

  async load() {
    const db = await this.open();
    return new Promise((resolve, reject) => {
      const request = db.transaction("state").objectStore("state").get(this.key);
      request.onsuccess = () => resolve(request.result || null);
      request.onerror = () => reject(request.error);
    });
  }

  async save(state) {
    const db = await this.open();
    return new Promise((resolve, reject) => {
      const tx = db.transaction("state", "readwrite");
      tx.objectStore("state").put(state, this.key);
      tx.oncomplete = () => resolve();
      tx.onerror = () => reject(tx.error);
    });
  }
}

export class QWRealtime {
  /**
   * @param {object} options
   * @param {string} options.token              access JWT
   * @param {string} [options.refreshToken]     refresh JWT: renews the access token on 4002
   * @param {(tokens:{access:string,refresh:string})=>void} [options.onTokens]  new tokens, to store
   * @param {string} [options.url]              WebSocket URL (default: this origin's /ws/)
   * @param {string} [options.refreshUrl]
   * @param {boolean|object} [options.persist]  true: IndexedDB per user; or an object with load()/save(state)
   * @param {boolean} [options.autoConnect]     default true
   */
  constructor({
    token,
    refreshToken = null,
    onTokens = null,
    url = defaultUrl(),
    refreshUrl = "/api/auth/token/refresh/",
    persist = false,
    autoConnect = true,
    backoffBaseMs = 1000,
    backoffCapMs = 30000,
    heartbeatMs = 30000,
  } = {}) {
    this.url = url;
    this.token = token;
    this.refreshToken = refreshToken;
    this.onTokens = onTokens;
    this.refreshUrl = refreshUrl;
    this.backoffBaseMs = backoffBaseMs;
    this.backoffCapMs = backoffCapMs;
    this.heartbeatMs = heartbeatMs;
    const claimed = jwtClaims(token).user_id; // simplejwt writes it as a string
    this.userId = claimed == null ? null : Number(claimed);
    this.state = "closed";
    this.lastSeq = null;
    this.outbox = new Map(); // client_msg_id → chat_message frame, in send order
    this.queue = []; // other frames sent while offline
    this.listeners = new Map();
    this.ws = null;
    this.attempt = 0;
    this.stopped = false;
    this.reconnectTimer = null;
    this.pingTimer = null;
    this.expiryTimer = null;
    this.lastHeard = 0;
    this.store =
      persist === true
        ? new IndexedDBStore(`user:${this.userId}`)
        : persist && typeof persist.load === "function"
          ? persist
          : null;
    this.ready = this.store ? this.restore() : Promise.resolve();
    if (autoConnect) this.connect();
  }

  // --- public API ---------------------------------------------------------

  /** Listen to a frame type, `*` (every frame) or a client event: `state`,
   *  `auth_error`, `outbox`, `send_failed`, `tokens`. Returns an unsubscribe function. */
  on(type, fn) {
    if (!this.listeners.has(type)) this.listeners.set(type, new Set());
    this.listeners.get(type).add(fn);
    return () => this.listeners.get(type)?.delete(fn);
  }

  /** Send a frame; queued while offline. A chat_message gets a client_msg_id and
   *  stays in the outbox until acknowledged. Returns the frame as sent. */
  send(frame) {
    const out = { ...frame };
    if (out.type === "chat_message") {
      out.client_msg_id ||= newClientMsgId();
      this.outbox.set(out.client_msg_id, out);
      this.changedOutbox();
      if (this.state === "open") this.transmit(out);
      return out;
    }
    if (this.state === "open") this.transmit(out);
    else if (!EPHEMERAL_TYPES.has(out.type)) this.queue.push(out);
    return out;
  }

  /** Resolves when the state so far is written to the store. */
  saved() {
    return this.saving || Promise.resolve();
  }

  /** Unacknowledged chat messages, oldest first. */
  pending() {
    return [...this.outbox.values()];
  }

  async connect() {
    this.stopped = false;
    clearTimeout(this.reconnectTimer);
    if (this.ws) return;
    this.setState("connecting");
    await this.ready;
    if (this.stopped || this.ws) return;
    const url = new URL(this.url, location.href);
    if (this.lastSeq !== null) url.searchParams.set("last_seq", String(this.lastSeq));
    // The token travels as a subprotocol, not in the URL: URLs end up in logs.
    const ws = new WebSocket(url, ["bearer", this.token]);
    this.ws = ws;
    ws.onopen = () => this.heard();
    ws.onmessage = (message) => this.receive(ws, message.data);
    ws.onclose = (event) => this.closed(ws, event.code);
  }

  /** Close for good (no reconnect). */
  close() {
    this.stopped = true;
    clearTimeout(this.reconnectTimer);
    clearTimeout(this.expiryTimer);
    const ws = this.ws;
    this.drop();
    if (ws) ws.close(1000);
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

  heard() {
    this.lastHeard = Date.now();
  }

  receive(ws, data) {
    if (ws !== this.ws) return;
    this.heard();
    let frame;
    try {
      frame = JSON.parse(data);
    } catch {
      return;
    }
    if (typeof frame.seq === "number") {
      if (this.lastSeq !== null && frame.seq <= this.lastSeq) return; // already seen
      this.lastSeq = frame.seq;
      this.persist();
    }
    switch (frame.type) {
      case "authenticated":
        this.opened(frame);
        break;
      case "resync_required":
        // The resume point is past retention: start again from the server's seq;
        // the application refetches over REST.
        this.lastSeq = Math.max(this.lastSeq ?? 0, this.serverSeq ?? 0);
        this.persist();
        break;
      case "message_sent":
        this.acknowledge(frame.client_msg_id);
        break;
      case "chat_message":
        // Our own echo proves the message was stored even if its ack was lost.
        if (frame.sender_id === this.userId) this.acknowledge(frame.client_msg_id);
        break;
      case "error":
        this.refused(frame);
        break;
    }
    this.emit(frame.type, frame);
  }

  opened(frame) {
    this.userId = frame.user_id;
    this.serverSeq = frame.last_seq;
    // First connection ever: history comes over REST; live events start after this seq.
    if (this.lastSeq === null) {
      this.lastSeq = frame.last_seq;
      this.persist();
    }
    this.attempt = 0;
    if (frame.heartbeat_interval) this.heartbeatMs = frame.heartbeat_interval * 1000;
    this.setState("open");
    this.startPing();
    this.scheduleTokenRenewal();
    const queued = this.queue.splice(0);
    for (const pending of this.outbox.values()) this.transmit(pending);
    for (const other of queued) this.transmit(other);
  }

  acknowledge(clientMsgId) {
    if (clientMsgId && this.outbox.delete(clientMsgId)) this.changedOutbox();
  }

  refused(frame) {
    const pending = frame.ref && this.outbox.get(frame.ref);
    if (!pending) return;
    if (frame.code === "rate_limited") {
      const delay = Math.max(1, frame.retry_after || 1) * 1000;
      setTimeout(() => {
        if (this.state === "open" && this.outbox.has(frame.ref)) this.transmit(pending);
      }, delay);
    } else if (!DURABLE_RETRYABLE_ERRORS.has(frame.code)) {
      // The server will never accept this one (bad receiver, too large, …).
      this.outbox.delete(frame.ref);
      this.changedOutbox();
      this.emit("send_failed", { type: "send_failed", frame: pending, error: frame });
    }
  }

  changedOutbox() {
    this.persist();
    this.emit("outbox", { type: "outbox", pending: this.pending() });
  }

  startPing() {
    clearInterval(this.pingTimer);
    this.pingTimer = setInterval(() => {
      // Two intervals without a single frame: the socket is dead even if TCP has not noticed.
      if (Date.now() - this.lastHeard > 2 * this.heartbeatMs) {
        const ws = this.ws;
        this.closed(ws, 4000);
        ws?.close();
        return;
      }
      this.transmit({ type: "ping" });
    }, this.heartbeatMs);
  }

  drop() {
    clearInterval(this.pingTimer);
    if (this.ws) {
      this.ws.onopen = this.ws.onmessage = this.ws.onclose = null;
    }
    this.ws = null;
  }

  closed(ws, code) {
    if (ws !== this.ws) return;
    this.drop();
    if (this.stopped) return this.setState("closed");
    if (code === 4001 || code === 4003) {
      this.stopped = true;
      this.setState("closed");
      const reason = code === 4001 ? "invalid_token" : "user_inactive";
      this.emit("auth_error", { type: "auth_error", code, reason });
      return;
    }
    this.setState("connecting");
    if (code === 4002) {
      this.refresh().then((ok) => {
        if (ok) this.connect();
        else {
          this.stopped = true;
          this.setState("closed");
          this.emit("auth_error", { type: "auth_error", code, reason: "token_expired" });
        }
      });
      return;
    }
    if (code === 4012) {
      // The server is restarting: another node takes us at once.
      this.connect();
      return;
    }
    // Full jitter: a random delay in [0, min(cap, base·2^attempt)).
    const ceiling = Math.min(this.backoffCapMs, this.backoffBaseMs * 2 ** this.attempt);
    this.attempt += 1;
    this.reconnectTimer = setTimeout(() => this.connect(), Math.random() * ceiling);
  }

  async refresh() {
    if (!this.refreshToken) return false;
    try {
      const response = await fetch(this.refreshUrl, {
        method: "POST",
        headers: { "Content-Type": "application/json" },
        body: JSON.stringify({ refresh: this.refreshToken }),
      });
      if (!response.ok) return false;
      const body = await response.json();
      this.token = body.access;
      if (body.refresh) this.refreshToken = body.refresh;
      const tokens = { access: this.token, refresh: this.refreshToken };
      this.onTokens?.(tokens);
      this.emit("tokens", { type: "tokens", ...tokens });
      return true;
    } catch {
      return false;
    }
  }

  /** Renew the access token shortly before it expires and hand it to the open socket,
   *  so the server never has to close it with 4002. */
  scheduleTokenRenewal() {
    clearTimeout(this.expiryTimer);
    const exp = jwtClaims(this.token).exp;
    if (!exp || !this.refreshToken) return;
    const delay = Math.max(0, exp * 1000 - Date.now() - 30000);
    this.expiryTimer = setTimeout(async () => {
      if ((await this.refresh()) && this.state === "open") {
        this.transmit({ type: "authenticate", token: this.token });
        this.scheduleTokenRenewal();
      }
    }, delay);
  }

  async restore() {
    try {
      const saved = await this.store.load();
      if (!saved) return;
      if (typeof saved.lastSeq === "number") this.lastSeq = Math.max(this.lastSeq ?? 0, saved.lastSeq);
      for (const frame of saved.outbox || []) {
        if (!this.outbox.has(frame.client_msg_id)) this.outbox.set(frame.client_msg_id, frame);
      }
      if (this.outbox.size) this.emit("outbox", { type: "outbox", pending: this.pending() });
    } catch (error) {
      console.warn("qw-realtime: could not read saved state", error);
    }
  }

  persist() {
    if (!this.store) return;
    // Writes are chained so an older state never lands after a newer one.
    // The first write waits for restore(), or it would overwrite what restore() is reading.
    this.saving = (this.saving || this.ready)
      .then(() => this.store.save({ lastSeq: this.lastSeq, outbox: this.pending() }))
      .catch((error) => console.warn("qw-realtime: could not save state", error));
  }
}

/**
 * One socket per browser: the tabs of a user elect a leader with a Web Lock; the
 * leader holds the only QWRealtime (and its IndexedDB state) and relays every
 * frame and client event to the other tabs over a BroadcastChannel; the others
 * hand their sends to it. When the leader tab closes, the lock passes to another
 * tab, which resumes from the shared last_seq. Same API as QWRealtime.
 */
export class QWSharedRealtime {
  constructor(options = {}) {
    this.options = { persist: true, ...options };
    const claimed = jwtClaims(options.token).user_id;
    this.userId = claimed == null ? null : Number(claimed);
    this.name = `qw-realtime:user:${this.userId}`;
    this.listeners = new Map();
    this.state = "connecting";
    this.leader = null;
    this.seenSeq = null; // the highest seq relayed to this tab
    this.unacked = new Map(); // chat messages of this tab, until acknowledged
    this.sharedOutbox = null;
    if (!globalThis.navigator?.locks || !globalThis.BroadcastChannel) {
      this.lead(); // no sharing possible: a socket of our own
      return;
    }
    this.channel = new BroadcastChannel(this.name);
    this.channel.onmessage = (message) => this.fromChannel(message.data);
    navigator.locks.request(this.name, () => {
      if (this.closed) return null;
      // Held as long as this tab lives (or until close()).
      return new Promise((release) => {
        this.releaseLock = release;
        this.lead();
      });
    });
    this.post({ kind: "hello" });
  }

  get isLeader() {
    return this.leader !== null;
  }

  get lastSeq() {
    return this.leader ? this.leader.lastSeq : this.seenSeq;
  }

  on(type, fn) {
    return QWRealtime.prototype.on.call(this, type, fn);
  }

  emit(type, payload) {
    return QWRealtime.prototype.emit.call(this, type, payload);
  }

  send(frame) {
    const out = { ...frame };
    if (out.type === "chat_message") {
      out.client_msg_id ||= newClientMsgId();
      this.unacked.set(out.client_msg_id, out);
    }
    if (this.leader) this.leader.send(out);
    else this.post({ kind: "send", frame: out });
    return out;
  }

  pending() {
    if (this.leader) return this.leader.pending();
    return this.sharedOutbox ?? [...this.unacked.values()];
  }

  /** Resolves when the leader's state is written to IndexedDB. */
  saved() {
    return this.leader ? this.leader.saved() : Promise.resolve();
  }

  close() {
    this.closed = true;
    this.leader?.close();
    this.releaseLock?.();
    this.channel?.close();
  }

  post(message) {
    this.channel?.postMessage(message);
  }

  lead() {
    const rt = new QWRealtime({ ...this.options, autoConnect: false });
    this.leader = rt;
    rt.on("*", (event) => {
      this.post({ kind: "event", event });
      this.deliver(event);
    });
    rt.ready.then(() => {
      // Frames the previous leader relayed may be newer than what it managed to save.
      if (this.seenSeq !== null && (rt.lastSeq === null || rt.lastSeq < this.seenSeq)) {
        rt.lastSeq = this.seenSeq;
      }
      for (const frame of this.unacked.values()) rt.send(frame);
      this.post({ kind: "leader" });
      rt.connect();
    });
  }

  deliver(event) {
    if (typeof event.seq === "number") this.seenSeq = Math.max(this.seenSeq ?? 0, event.seq);
    if (event.type === "state") this.state = event.state;
    if (event.type === "outbox") this.sharedOutbox = event.pending;
    const acked =
      event.type === "message_sent" ||
      (event.type === "chat_message" && event.sender_id === this.userId);
    if (acked) this.unacked.delete(event.client_msg_id);
    this.emit(event.type, event);
  }

  fromChannel(message) {
    if (this.leader) {
      if (message.kind === "send") this.leader.send(message.frame);
      else if (message.kind === "hello") {
        const state = { type: "state", state: this.leader.state };
        this.post({ kind: "event", event: state });
        this.post({ kind: "event", event: { type: "outbox", pending: this.leader.pending() } });
      }
      return;
    }
    if (message.kind === "event") this.deliver(message.event);
    else if (message.kind === "leader") {
      // A new leader: whatever this tab sent meanwhile may have reached nobody.
      for (const frame of this.unacked.values()) this.post({ kind: "send", frame });
    }
  }
}
