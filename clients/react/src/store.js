// The state the hooks read, kept outside React (useSyncExternalStore reads it).
//
// One RealtimeStore per client (QWRealtime or QWSharedRealtime from /static/): it
// listens to the client's frames once and keeps immutable snapshots per slice
// (connection, each conversation, notifications, each task), so a component
// re-renders only when its slice changes and concurrent renders never tear.
//
// Invariants:
// - a conversation holds each message once, keyed by message_id, in server order
//   (message ids ascend in commit order); messages still in the client's outbox
//   follow, in the order they were sent;
// - history over REST and live frames are merged by id: a live edit or deletion
//   that arrives before the history page that still shows the old text wins
//   (edits and tombstones are kept for messages not loaded yet);
// - history is read again once the socket is first authenticated: the client
//   starts its live stream at the server's seq of that moment, so a message
//   committed between an earlier REST read and that moment would be missed;
// - a task channel is subscribed once however many components watch it, and
//   unsubscribed only when the last one is gone for a tick (StrictMode mounts,
//   unmounts and mounts again at once: that must not reach the wire).

const TYPING_TTL_MS = 6000;

export function conversationKey(target) {
  if (target?.room != null) return `room:${Number(target.room)}`;
  if (target?.with != null) return `with:${Number(target.with)}`;
  throw new TypeError("useConversation needs {with: userId} or {room: roomId}");
}

function byId(a, b) {
  return a.message_id - b.message_id;
}

function restPath(url) {
  // DRF's `next` is absolute, built from the Host the server saw: behind a dev proxy
  // that is another origin. Keep only the path and query.
  const parsed = new URL(url, "http://localhost");
  return parsed.pathname + parsed.search;
}

function emptyConversation(key) {
  return {
    key,
    messages: [],
    loading: true,
    error: null,
    hasMore: false,
    readUpTo: 0,
    unread: 0,
    typing: [],
  };
}

export class RealtimeStore {
  /**
   * @param {object} client  a QWRealtime / QWSharedRealtime (on, send, pending, state, userId)
   * @param {object} [options]
   * @param {(path: string, init?: RequestInit) => Promise<any>} [options.fetchJson]  REST with the user's token
   */
  constructor(client, { fetchJson = null } = {}) {
    this.client = client;
    this.token = client.token ?? client.options?.token ?? null;
    this.fetchJson = fetchJson ?? ((path, init) => this.defaultFetch(path, init));
    this.listeners = new Map(); // slice key → Set(fn)
    this.snapshots = new Map(); // slice key → immutable snapshot
    this.conversations = new Map(); // key → {byId: Map, failed: Map, refs, fetched, next, ...}
    this.keyOfMessage = new Map(); // message_id → conversation key
    this.edits = new Map(); // message_id → {content, edited_at} not applied yet
    this.deleted = new Set();
    this.sent = new Map(); // client_msg_id → the frame as sent, until its message is known
    this.tasks = new Map(); // task id → {refs, releaseTimer}
    this.notifications = null;
    this.opened = client.state === "open";
    this.setSnapshot("connection", this.connectionSnapshot());
    this.unlisten = client.on("*", (frame) => this.receive(frame));
    this.rememberOutbox(client.pending?.() ?? []);
  }

  get userId() {
    return this.client.userId ?? null;
  }

  // --- subscriptions (useSyncExternalStore) ---------------------------------

  subscribe(key, fn) {
    if (!this.listeners.has(key)) this.listeners.set(key, new Set());
    this.listeners.get(key).add(fn);
    return () => this.listeners.get(key)?.delete(fn);
  }

  getSnapshot(key) {
    return this.snapshots.get(key);
  }

  setSnapshot(key, snapshot) {
    this.snapshots.set(key, snapshot);
    for (const fn of this.listeners.get(key) || []) fn();
  }

  // --- the client's frames ----------------------------------------------------

  receive(frame) {
    switch (frame.type) {
      case "state":
        if (frame.state === "open" && !this.opened) {
          this.opened = true;
          this.refetchAfterFirstOpen();
        }
        this.changedConnection();
        break;
      case "retry":
      case "auth_error":
      case "session_end":
        this.lastEvent = frame;
        this.changedConnection();
        break;
      case "tokens":
        this.token = frame.access;
        break;
      case "outbox":
        this.rememberOutbox(frame.pending);
        this.changedConnection();
        this.changedAllConversations();
        break;
      case "message_sent":
        this.acknowledged(frame);
        break;
      case "send_failed":
        this.failed(frame);
        break;
      case "chat_message":
        this.addMessages(this.keyOfFrame(frame), [this.fromFrame(frame)]);
        if (frame.sender_id !== this.userId && this.client.isLeader !== false) {
          // One tab answers for the browser (in QWSharedRealtime, the leader).
          this.client.send({ type: "message_received", message_id: frame.message_id });
        }
        break;
      case "message_status":
        this.statusChanged(frame);
        break;
      case "message_updated":
        this.edited(frame);
        break;
      case "message_deleted":
        this.removed(frame.message_id);
        break;
      case "conversation_read":
        this.readOn(frame.room != null ? `room:${frame.room}` : `with:${frame.with}`, frame.last_read_message_id);
        break;
      case "typing_indicator":
        this.typingChanged(frame);
        break;
      case "notification":
        this.notificationArrived(frame);
        break;
      case "notification_read":
        this.notificationsRead(frame);
        break;
      case "task_status_update":
        this.taskChanged(frame);
        break;
      case "resync_required":
        // The resume point is past retention: what was missed comes over REST, deletions included.
        for (const key of this.conversations.keys()) this.fetchHistory(key, { replace: true });
        if (this.notifications?.requested) this.fetchNotifications();
        for (const id of this.tasks.keys()) this.fetchTask(id);
        break;
    }
  }

  // --- connection ---------------------------------------------------------------

  connectionSnapshot() {
    const event = this.lastEvent;
    let status = this.client.state === "open" ? "online" : this.client.state;
    if (event?.type === "auth_error" || event?.type === "session_end") status = "signed_out";
    else if (status === "connecting" && this.client.retryAt && this.client.retryAt > Date.now()) status = "waiting";
    return {
      status,
      retryAt: status === "waiting" ? this.client.retryAt : null,
      pending: this.client.pending?.().length ?? 0,
      authError: event?.type === "auth_error" ? event.reason : null,
    };
  }

  changedConnection() {
    this.setSnapshot("connection", this.connectionSnapshot());
  }

  send(frame) {
    return this.client.send(frame);
  }

  // --- conversations ------------------------------------------------------------

  conversation(key) {
    let conversation = this.conversations.get(key);
    if (!conversation) {
      conversation = {
        byId: new Map(),
        failed: new Map(),
        refs: 0,
        next: null,
        loadedOlder: false,
        requested: false,
        readUpTo: 0,
        state: null,
      };
      conversation.state = emptyConversation(key);
      this.conversations.set(key, conversation);
      this.snapshots.set(`conversation:${key}`, conversation.state);
    }
    return conversation;
  }

  acquireConversation(key) {
    const conversation = this.conversation(key);
    conversation.refs += 1;
    if (!conversation.requested) this.fetchHistory(key);
  }

  releaseConversation(key) {
    const conversation = this.conversations.get(key);
    if (conversation) conversation.refs -= 1;
  }

  refetchAfterFirstOpen() {
    for (const [key, conversation] of this.conversations) if (conversation.requested) this.fetchHistory(key);
    if (this.notifications?.requested) this.fetchNotifications();
    for (const id of this.tasks.keys()) this.fetchTask(id);
  }

  async fetchHistory(key, { older = false, replace = false } = {}) {
    const conversation = this.conversation(key);
    conversation.requested = true;
    const [kind, id] = key.split(":");
    const path = older ? conversation.next : `/api/chat/messages/?${kind}=${id}`;
    if (!path) return;
    try {
      const page = await this.fetchJson(path);
      // The first page read again (after the first open, a resync) must not lose older pages' cursor.
      if (older || !conversation.loadedOlder) conversation.next = page.next ? restPath(page.next) : null;
      if (older) conversation.loadedOlder = true;
      conversation.error = null;
      if (replace) this.forgetMissing(conversation, page);
      this.addMessages(
        key,
        page.results.map((m) => this.fromHistory(m)),
        { loaded: true },
      );
    } catch (error) {
      conversation.error = String(error?.message ?? error);
      this.changedConversation(key, { loaded: true });
    }
  }

  /** Known messages in the range a fresh history page covers but absent from it were deleted. */
  forgetMissing(conversation, page) {
    const ids = new Set(page.results.map((m) => m.message_id));
    const oldest = page.next ? Math.min(...ids) : 0;
    for (const id of [...conversation.byId.keys()]) {
      if (id >= oldest && !ids.has(id)) {
        conversation.byId.delete(id);
        this.keyOfMessage.delete(id);
      }
    }
  }

  loadOlder(key) {
    return this.fetchHistory(key, { older: true });
  }

  keyOfFrame(frame) {
    if (frame.room_id != null) return `room:${frame.room_id}`;
    const other = frame.sender_id === this.userId ? frame.receiver_id : frame.sender_id;
    return `with:${other}`;
  }

  fromFrame(frame) {
    return {
      message_id: frame.message_id,
      client_msg_id: frame.client_msg_id ?? null,
      sender_id: frame.sender_id,
      receiver_id: frame.receiver_id ?? null,
      room_id: frame.room_id ?? null,
      content: frame.content,
      timestamp: frame.timestamp,
      edited_at: null,
      attachments: frame.attachments ?? [],
      mentions: frame.mentions ?? [],
      delivered: false,
      read: false,
    };
  }

  fromHistory(row) {
    return {
      ...this.fromFrame(row),
      edited_at: row.edited_at ?? null,
      delivered: Boolean(row.delivered_at),
      read: Boolean(row.read_at),
    };
  }

  addMessages(key, messages, { loaded = false } = {}) {
    const conversation = this.conversation(key);
    for (const message of messages) {
      if (this.deleted.has(message.message_id)) continue;
      const known = conversation.byId.get(message.message_id);
      // The text with the newer edit wins (a tie keeps what is shown); receipts only add up.
      const text = known && (message.edited_at ?? "") <= (known.edited_at ?? "") ? known : message;
      const merged = known
        ? {
            ...message,
            ...known,
            content: text.content,
            edited_at: text.edited_at,
            delivered: known.delivered || message.delivered,
            read: known.read || message.read,
          }
        : { ...message };
      const edit = this.edits.get(message.message_id);
      if (edit && (!merged.edited_at || edit.edited_at > merged.edited_at)) Object.assign(merged, edit);
      this.edits.delete(message.message_id);
      if (merged.client_msg_id) this.sent.delete(merged.client_msg_id);
      if (merged.sender_id !== this.userId && merged.read) {
        conversation.readUpTo = Math.max(conversation.readUpTo, merged.message_id);
      }
      conversation.byId.set(merged.message_id, merged);
      this.keyOfMessage.set(merged.message_id, key);
    }
    this.changedConversation(key, { loaded });
  }

  acknowledged(frame) {
    const sent = this.sent.get(frame.client_msg_id);
    if (!sent) return;
    const key = sent.room_id != null ? `room:${sent.room_id}` : `with:${sent.receiver_id}`;
    this.addMessages(key, [
      this.fromFrame({ ...sent, message_id: frame.message_id, sender_id: this.userId, timestamp: frame.timestamp }),
    ]);
  }

  failed({ frame, error }) {
    if (frame?.type !== "chat_message") return;
    const key = frame.room_id != null ? `room:${frame.room_id}` : `with:${frame.receiver_id}`;
    this.sent.delete(frame.client_msg_id);
    this.conversation(key).failed.set(frame.client_msg_id, { frame, code: error?.code ?? "failed" });
    this.changedConversation(key);
  }

  rememberOutbox(pending) {
    for (const frame of pending) {
      if (frame.type === "chat_message" && frame.client_msg_id) this.sent.set(frame.client_msg_id, frame);
    }
  }

  statusChanged(frame) {
    const key = this.keyOfMessage.get(frame.message_id);
    if (!key) return;
    const conversation = this.conversation(key);
    for (const message of conversation.byId.values()) {
      if (message.sender_id !== this.userId) continue;
      // Read covers every earlier message of the conversation (SPEC §5 read_receipt).
      const hit =
        frame.status === "read" ? message.message_id <= frame.message_id : message.message_id === frame.message_id;
      if (!hit) continue;
      const next = { ...message, delivered: true, read: message.read || frame.status === "read" };
      if (next.read !== message.read || next.delivered !== message.delivered)
        conversation.byId.set(message.message_id, next);
    }
    this.changedConversation(key);
  }

  edited(frame) {
    const key = this.keyOfMessage.get(frame.message_id);
    const edit = { content: frame.content, edited_at: frame.edited_at };
    if (!key) {
      this.edits.set(frame.message_id, edit);
      return;
    }
    const conversation = this.conversation(key);
    conversation.byId.set(frame.message_id, { ...conversation.byId.get(frame.message_id), ...edit });
    this.changedConversation(key);
  }

  removed(messageId) {
    this.deleted.add(messageId);
    this.edits.delete(messageId);
    const key = this.keyOfMessage.get(messageId);
    if (!key) return;
    this.conversation(key).byId.delete(messageId);
    this.keyOfMessage.delete(messageId);
    this.changedConversation(key);
  }

  readOn(key, lastReadMessageId) {
    const conversation = this.conversation(key);
    if (lastReadMessageId <= (conversation.readUpTo ?? 0)) return;
    conversation.readUpTo = lastReadMessageId;
    this.changedConversation(key);
  }

  markRead(key) {
    const conversation = this.conversation(key);
    const theirs = conversation.state.messages.filter((m) => m.message_id && m.sender_id !== this.userId);
    const newest = theirs.at(-1);
    if (!newest || newest.message_id <= (conversation.readUpTo ?? 0)) return;
    this.client.send({ type: "read_receipt", message_id: newest.message_id });
    this.readOn(key, newest.message_id);
  }

  sendMessage(key, content, extra = {}) {
    const [kind, id] = key.split(":");
    const target = kind === "room" ? { room_id: Number(id) } : { receiver_id: Number(id) };
    const frame = this.client.send({ type: "chat_message", ...target, content, ...extra });
    this.sent.set(frame.client_msg_id, frame);
    this.changedConversation(key);
    return frame;
  }

  setTyping(key, isTyping) {
    const [kind, id] = key.split(":");
    const target = kind === "room" ? { room_id: Number(id) } : { receiver_id: Number(id) };
    this.client.send({ type: "typing", ...target, is_typing: isTyping });
  }

  typingChanged(frame) {
    const key = frame.room_id != null ? `room:${frame.room_id}` : `with:${frame.sender_id}`;
    const conversation = this.conversation(key);
    conversation.typing ??= new Map();
    clearTimeout(conversation.typing.get(frame.sender_id));
    if (frame.is_typing) {
      conversation.typing.set(
        frame.sender_id,
        setTimeout(() => {
          conversation.typing.delete(frame.sender_id);
          this.changedConversation(key);
        }, TYPING_TTL_MS),
      );
    } else conversation.typing.delete(frame.sender_id);
    this.changedConversation(key);
  }

  changedAllConversations() {
    for (const key of this.conversations.keys()) this.changedConversation(key);
  }

  changedConversation(key, { loaded = false } = {}) {
    const conversation = this.conversation(key);
    const known = [...conversation.byId.values()].sort(byId);
    const knownIds = new Set(known.map((m) => m.client_msg_id).filter(Boolean));
    const pending = [];
    for (const frame of this.client.pending?.() ?? []) {
      if (frame.type !== "chat_message" || knownIds.has(frame.client_msg_id)) continue;
      if (this.keyOfTarget(frame) !== key) continue;
      pending.push(this.localMessage(frame, "sending"));
    }
    for (const { frame, code } of conversation.failed.values()) {
      if (!knownIds.has(frame.client_msg_id)) pending.push({ ...this.localMessage(frame, "failed"), error: code });
    }
    const readUpTo = conversation.readUpTo ?? 0;
    const messages = [
      ...known.map((m) => ({
        ...m,
        mine: m.sender_id === this.userId,
        status: m.sender_id !== this.userId ? null : m.read ? "read" : m.delivered ? "delivered" : "sent",
      })),
      ...pending,
    ];
    const previous = conversation.state;
    conversation.state = {
      key,
      messages: sameMessages(previous.messages, messages) ? previous.messages : messages,
      loading: previous.loading && !loaded,
      error: conversation.error ?? null,
      hasMore: Boolean(conversation.next),
      readUpTo,
      unread: known.filter((m) => m.sender_id !== this.userId && m.message_id > readUpTo).length,
      typing: [...(conversation.typing?.keys() ?? [])],
    };
    if (!shallowEqual(previous, conversation.state)) this.setSnapshot(`conversation:${key}`, conversation.state);
    else conversation.state = previous;
  }

  keyOfTarget(frame) {
    return frame.room_id != null ? `room:${frame.room_id}` : `with:${frame.receiver_id}`;
  }

  localMessage(frame, status) {
    return {
      message_id: null,
      client_msg_id: frame.client_msg_id,
      sender_id: this.userId,
      receiver_id: frame.receiver_id ?? null,
      room_id: frame.room_id ?? null,
      content: frame.content,
      timestamp: null,
      edited_at: null,
      attachments: [],
      mentions: [],
      delivered: false,
      read: false,
      mine: true,
      status,
    };
  }

  // --- notifications ------------------------------------------------------------

  notificationsSlice() {
    if (!this.notifications) {
      this.notifications = { byId: new Map(), unreadCount: 0, loading: true, requested: false, error: null };
      this.changedNotifications();
    }
    return this.notifications;
  }

  loadNotifications() {
    const state = this.notificationsSlice();
    if (state.requested) return;
    state.requested = true;
    this.fetchNotifications();
  }

  async fetchNotifications() {
    const state = this.notifications;
    if (state.fetching) {
      state.stale = true; // a read or a resync during the request: read again after it
      return;
    }
    state.fetching = true;
    state.stale = false;
    try {
      const page = await this.fetchJson("/api/notifications/");
      const newest = Math.max(0, ...page.results.map((n) => n.id));
      // A live notification newer than the page was not counted by the server's unread_count.
      const liveUnread = [...state.byId.values()].filter((n) => n.id > newest && !n.read_at).length;
      for (const row of page.results) state.byId.set(row.id, { ...state.byId.get(row.id), ...row });
      state.unreadCount = page.unread_count + liveUnread;
      state.error = null;
    } catch (error) {
      state.error = String(error?.message ?? error);
    }
    state.loading = false;
    state.fetching = false;
    this.changedNotifications();
    if (state.stale) this.fetchNotifications();
  }

  notificationArrived(frame) {
    const state = this.notifications;
    if (!state || state.byId.has(frame.notification_id)) return;
    state.byId.set(frame.notification_id, {
      id: frame.notification_id,
      notification_type: frame.notification_type,
      title: frame.title,
      message: frame.message,
      link: frame.link,
      created_at: frame.created_at,
      read_at: null,
    });
    if (!state.loading) state.unreadCount += 1;
    this.changedNotifications();
  }

  notificationsRead(frame) {
    const state = this.notifications;
    if (!state) return;
    if (state.fetching) {
      state.stale = true;
      return;
    }
    if (frame.all) {
      for (const [id, n] of state.byId) if (!n.read_at) state.byId.set(id, { ...n, read_at: frame.timestamp });
      state.unreadCount = 0;
    } else {
      let unknown = false;
      for (const id of frame.notification_ids) {
        const n = state.byId.get(id);
        if (!n) unknown = true;
        else if (!n.read_at) {
          state.byId.set(id, { ...n, read_at: frame.timestamp });
          state.unreadCount = Math.max(0, state.unreadCount - 1);
        }
      }
      // One we never loaded may have been unread: only the server knows the count.
      if (unknown) return this.fetchNotifications();
    }
    this.changedNotifications();
  }

  async markNotificationRead(id) {
    await this.fetchJson(`/api/notifications/${id}/read/`, { method: "POST" });
  }

  async markAllNotificationsRead() {
    await this.fetchJson("/api/notifications/read-all/", { method: "POST" });
  }

  changedNotifications() {
    const state = this.notifications;
    this.setSnapshot("notifications", {
      items: [...state.byId.values()].sort((a, b) => b.id - a.id),
      unreadCount: state.unreadCount,
      loading: state.loading,
      error: state.error,
    });
  }

  // --- tasks ----------------------------------------------------------------------

  acquireTask(id) {
    let task = this.tasks.get(id);
    if (!task) {
      task = { refs: 0, releaseTimer: null, subscribed: false, task: null, live: null, loading: true, error: null };
      this.tasks.set(id, task);
      this.fetchTask(id);
    }
    task.refs += 1;
    clearTimeout(task.releaseTimer);
    task.releaseTimer = null;
    if (!task.subscribed) {
      task.subscribed = true;
      this.client.send({ type: "subscribe", channel: `task:${id}` });
    }
    this.changedTask(id);
  }

  releaseTask(id) {
    const task = this.tasks.get(id);
    if (!task) return;
    task.refs -= 1;
    if (task.refs > 0 || task.releaseTimer) return;
    task.releaseTimer = setTimeout(() => {
      task.releaseTimer = null;
      if (task.refs > 0) return;
      task.subscribed = false;
      this.client.send({ type: "unsubscribe", channel: `task:${id}` });
      this.tasks.delete(id);
      this.snapshots.delete(`task:${id}`);
    }, 0);
  }

  async fetchTask(id) {
    const task = this.tasks.get(id);
    try {
      task.task = await this.fetchJson(`/api/tasks/${id}/`);
      task.error = null;
    } catch (error) {
      task.error = String(error?.message ?? error);
    }
    task.loading = false;
    this.changedTask(id);
  }

  taskChanged(frame) {
    const task = this.tasks.get(frame.task_id);
    if (!task) return;
    if (task.live && Date.parse(task.live.timestamp) > Date.parse(frame.timestamp)) return;
    task.live = frame;
    this.changedTask(frame.task_id);
  }

  changedTask(id) {
    const task = this.tasks.get(id);
    // The newer of the REST row and the last live change wins.
    const newer = task.live && (!task.task || Date.parse(task.live.timestamp) >= Date.parse(task.task.updated_at));
    const live = newer ? task.live : null;
    const snapshot = {
      id,
      task: task.task,
      status: live?.status ?? task.task?.status ?? null,
      previousStatus: live?.previous_status ?? null,
      updatedBy: live?.updated_by ?? null,
      updatedAt: live?.timestamp ?? task.task?.updated_at ?? null,
      loading: task.loading,
      error: task.error,
    };
    if (!shallowEqual(this.snapshots.get(`task:${id}`) ?? {}, snapshot)) this.setSnapshot(`task:${id}`, snapshot);
  }

  // --- REST -------------------------------------------------------------------------

  async defaultFetch(path, init = {}) {
    const response = await fetch(path, {
      ...init,
      headers: { Accept: "application/json", Authorization: `Bearer ${this.token}`, ...(init.headers || {}) },
    });
    if (!response.ok) throw new Error(`${init.method ?? "GET"} ${path}: HTTP ${response.status}`);
    return response.status === 204 ? null : response.json();
  }

  dispose() {
    this.unlisten?.();
    for (const task of this.tasks.values()) clearTimeout(task.releaseTimer);
  }
}

function shallowEqual(a, b) {
  const keys = Object.keys(a);
  return keys.length === Object.keys(b).length && keys.every((k) => Object.is(a[k], b[k]) || sameList(a[k], b[k]));
}

function sameList(a, b) {
  return Array.isArray(a) && Array.isArray(b) && a.length === b.length && a.every((x, i) => x === b[i]);
}

function sameMessages(a, b) {
  return (
    a.length === b.length &&
    a.every((m, i) => {
      const n = b[i];
      return Object.keys(m).every((k) => Object.is(m[k], n[k]) || sameList(m[k], n[k]));
    })
  );
}
