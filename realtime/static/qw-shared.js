// One socket per browser (SPEC §8): the tabs of a user elect a leader with a Web
// Lock; the leader holds the only QWRealtime and relays every frame and client
// event to the other tabs over a BroadcastChannel; the others hand their sends
// to it. Same API as QWRealtime.
//
// What must survive a hand-over (the leader tab closing at any moment):
// - a follower's chat messages are written to the shared IndexedDB outbox before
//   they are handed over, so the next leader sends them even if this one never did;
// - a follower's other frames (receipts, subscribe) are kept until the leader
//   confirms them, and handed to every new leader again;
// - the new leader resumes from the last seq *this tab* was shown, so a frame the
//   old leader received but never relayed is replayed, not lost.

import { SendRefused, Subscriptions, frameProblem } from "./qw-protocol.js";
import { QWRealtime, jwtClaims, newClientMsgId } from "./qw-realtime.js";
import { IndexedDBStore } from "./qw-store.js";

const EPHEMERAL_TYPES = new Set(["typing", "ping", "heartbeat"]);

export class QWSharedRealtime {
  constructor(options = {}) {
    this.options = { persist: true, ...options };
    const claimed = jwtClaims(options.token).user_id;
    this.userId = claimed == null ? null : Number(claimed);
    this.name = `qw-realtime:user:${this.userId}`;
    this.tabId = newClientMsgId();
    this.listeners = new Map();
    this.state = "connecting";
    this.leader = null;
    this.seenSeq = null; // the end of the unbroken run of seqs shown in this tab
    this.ahead = new Set(); // seqs shown past a gap in that run
    this.subscriptions = new Subscriptions();
    this.relaying = new Map(); // id → non-chat frame handed to the leader, until it confirms
    this.relayCounter = 0;
    this.unacked = new Map(); // chat messages of this tab, until acknowledged
    this.sharedOutbox = null;
    this.store = new IndexedDBStore(`user:${this.userId}`);
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
    globalThis.addEventListener?.("pagehide", () => this.leader?.saved());
    this.post({ kind: "hello" });
  }

  get isLeader() {
    return this.leader !== null;
  }

  get lastSeq() {
    return this.leader ? this.leader.lastSeq : this.seenSeq;
  }

  get retryAt() {
    return this.leader ? this.leader.retryAt : this.followerRetryAt;
  }

  on(type, fn) {
    return QWRealtime.prototype.on.call(this, type, fn);
  }

  emit(type, payload) {
    return QWRealtime.prototype.emit.call(this, type, payload);
  }

  send(frame) {
    const out = { ...frame };
    if (out.type === "chat_message") out.client_msg_id ||= newClientMsgId();
    const problem = frameProblem(out);
    if (problem) throw new SendRefused(problem, out);
    this.subscriptions.track(out);
    if (this.leader) return this.leader.send(out);
    if (out.type === "chat_message") {
      this.unacked.set(out.client_msg_id, out);
      // In the shared outbox first: whichever tab leads next sends it.
      this.store.putOutbox(out).then(() => this.post({ kind: "send", frame: out }));
    } else if (EPHEMERAL_TYPES.has(out.type)) {
      this.post({ kind: "send", frame: out });
    } else if (out.type !== "subscribe" && out.type !== "unsubscribe") {
      this.relayCounter += 1;
      const id = this.relayCounter;
      this.relaying.set(id, out);
      this.post({ kind: "send", frame: out, id, tab: this.tabId });
    } else {
      this.post({ kind: "send", frame: out });
    }
    return out;
  }

  pending() {
    if (this.leader) return this.leader.pending();
    return this.sharedOutbox ?? [...this.unacked.values()];
  }

  /** Resolves when this tab's state is written to IndexedDB. */
  async saved() {
    await this.store.settled();
    if (this.leader) await this.leader.saved();
  }

  /** Sign-out in one tab ends the session in all of them. */
  endSession(reason) {
    this.post({ kind: "end", reason });
    this.ended(reason);
  }

  ended(reason) {
    this.close();
    this.emit("session_end", { type: "session_end", reason });
  }

  close() {
    this.closed = true;
    this.leader?.close();
    this.releaseLock?.();
    this.channel?.close();
    this.channel = null;
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
      // Resume from what this tab was shown: the old leader may have stored a seq
      // whose frame never reached us. Frames we did see come again and are dropped.
      if (this.seenSeq !== null) rt.lastSeq = this.seenSeq;
      for (const frame of this.subscriptions.frames()) rt.send(frame);
      for (const frame of this.unacked.values()) rt.adopt(frame);
      for (const frame of this.relaying.values()) rt.send(frame);
      this.relaying.clear();
      this.post({ kind: "leader" });
      rt.connect();
    });
  }

  deliver(event) {
    if (typeof event.seq === "number" && !this.firstSight(event.seq)) return;
    if (event.type === "state") this.state = event.state;
    if (event.type === "retry") this.followerRetryAt = event.at;
    if (event.type === "outbox") this.sharedOutbox = event.pending;
    const acked = event.type === "message_sent" || (event.type === "chat_message" && event.sender_id === this.userId);
    if (acked) this.unacked.delete(event.client_msg_id);
    if (event.type === "send_failed") this.unacked.delete(event.frame.client_msg_id);
    this.emit(event.type, event);
  }

  /**
   * True the first time this tab sees a seq. `seenSeq` is the end of the unbroken
   * run: a frame lost on its way from the leader leaves a gap, a new leader resumes
   * from it, and the frames shown past the gap (`ahead`) are dropped when they come
   * again. (With only the highest seq kept, a later frame hid the lost one for good.)
   */
  firstSight(seq) {
    if (this.ahead.delete(seq)) return false;
    if (!this.leader && this.seenSeq !== null && seq <= this.seenSeq) return false;
    if (this.seenSeq === null || seq === this.seenSeq + 1) {
      this.seenSeq = seq;
      while (this.ahead.has(this.seenSeq + 1)) this.seenSeq += 1;
    } else if (seq > this.seenSeq) {
      this.ahead.add(seq);
      if (this.ahead.size > 1000) {
        // A gap no leader came to repair: stop holding on to it.
        this.seenSeq = Math.max(...this.ahead);
        this.ahead.clear();
      }
    }
    return true;
  }

  fromChannel(message) {
    if (message.kind === "end") return this.ended(message.reason);
    if (this.leader) {
      if (message.kind === "send") this.relayed(message);
      else if (message.kind === "hello") {
        this.post({ kind: "event", event: { type: "state", state: this.leader.state } });
        this.post({ kind: "event", event: { type: "outbox", pending: this.leader.pending() } });
        this.post({ kind: "seq", lastSeq: this.leader.lastSeq });
      }
      return;
    }
    if (message.kind === "event") this.deliver(message.event);
    else if (message.kind === "seq") this.seenSeq ??= message.lastSeq;
    else if (message.kind === "accepted" && message.tab === this.tabId) this.relaying.delete(message.id);
    else if (message.kind === "leader") {
      // A new leader: whatever this tab handed over meanwhile may have reached nobody.
      for (const frame of this.subscriptions.frames()) this.post({ kind: "send", frame });
      for (const frame of this.unacked.values()) this.post({ kind: "send", frame });
      for (const [id, frame] of this.relaying) this.post({ kind: "send", frame, id, tab: this.tabId });
    }
  }

  relayed({ frame, id, tab }) {
    if (frame.type === "chat_message") this.leader.adopt(frame);
    else {
      try {
        this.leader.send(frame);
      } catch (error) {
        if (!(error instanceof SendRefused)) throw error;
      }
    }
    if (id != null) this.post({ kind: "accepted", id, tab });
  }
}
