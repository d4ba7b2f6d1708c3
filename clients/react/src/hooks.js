// React bindings: one provider, four hooks, all reading RealtimeStore through
// useSyncExternalStore (concurrent-safe: every component of a render sees the same
// snapshot). Plain JS with createElement, so the package needs no build step.

import {
  createContext,
  createElement,
  useCallback,
  useContext,
  useEffect,
  useState,
  useSyncExternalStore,
} from "react";
import { RealtimeStore, conversationKey } from "./store.js";

const RealtimeContext = createContext(null);

// One store per client, whoever asks: StrictMode renders twice and a remounted
// provider must find the same store, never listen to the client a second time.
const stores = new WeakMap();

/** The store of a client (created on first use). */
export function storeFor(client, options) {
  let store = stores.get(client);
  if (!store) {
    store = new RealtimeStore(client, options);
    stores.set(client, store);
  }
  return store;
}

/**
 * Holds the one realtime client of the page for every hook below it.
 * `client` is a QWSharedRealtime (one socket per browser) or a QWRealtime from
 * /static/; create it once, outside render, and close it when the user signs out.
 * `fetchJson(path, init)` overrides how REST is called (default: fetch with the
 * client's current access token).
 */
export function RealtimeProvider({ client, fetchJson = null, children }) {
  if (!client) throw new TypeError("RealtimeProvider needs a client");
  const store = storeFor(client, { fetchJson });
  return createElement(RealtimeContext.Provider, { value: store }, children);
}

export function useRealtimeStore() {
  const store = useContext(RealtimeContext);
  if (!store) throw new Error("realtime hooks must be used inside <RealtimeProvider>");
  return store;
}

function useSlice(store, key) {
  const subscribe = useCallback((fn) => store.subscribe(key, fn), [store, key]);
  const get = useCallback(() => store.getSnapshot(key), [store, key]);
  return useSyncExternalStore(subscribe, get, get);
}

/** Seconds until `at`, re-rendering each second while it is in the future. */
function useCountdown(at) {
  const [now, setNow] = useState(() => Date.now());
  useEffect(() => {
    if (!at) return;
    setNow(Date.now());
    const timer = setInterval(() => setNow(Date.now()), 1000);
    return () => clearInterval(timer);
  }, [at]);
  return at ? Math.max(0, Math.ceil((at - now) / 1000)) : null;
}

export function describeConnection({ status, pending }, retryIn) {
  const waiting = pending ? ` · ${pending} message${pending === 1 ? "" : "s"} waiting` : "";
  switch (status) {
    case "online":
      return `Connected${waiting}`;
    case "waiting":
      return `Offline · retrying in ${retryIn} s${waiting}`;
    case "connecting":
      return `Connecting…${waiting}`;
    case "signed_out":
      return "Signed out";
    default:
      return `Offline${waiting}`;
  }
}

/**
 * The connection as a person reads it, and `send`.
 * status: "online" | "connecting" | "waiting" (retry scheduled) | "signed_out" | "closed".
 */
export function useRealtime() {
  const store = useRealtimeStore();
  const connection = useSlice(store, "connection");
  const retryIn = useCountdown(connection.retryAt);
  const send = useCallback((frame) => store.send(frame), [store]);
  return {
    ...connection,
    online: connection.status === "online",
    retryIn,
    label: describeConnection(connection, retryIn),
    userId: store.userId,
    send,
    client: store.client,
  };
}

/**
 * A 1:1 conversation (`{with: userId}`) or a room (`{room: roomId}`): the history
 * page from REST joined with live frames, each message once, in server order,
 * with its status (`sending`, `sent`, `delivered`, `read`, `failed`; null for
 * others' messages), edits and deletions applied.
 */
export function useConversation(target) {
  const store = useRealtimeStore();
  const key = conversationKey(target);
  store.conversation(key); // the slice exists before the first read
  useEffect(() => {
    store.acquireConversation(key);
    return () => store.releaseConversation(key);
  }, [store, key]);
  const state = useSlice(store, `conversation:${key}`);
  const send = useCallback((content, extra) => store.sendMessage(key, content, extra), [store, key]);
  const markRead = useCallback(() => store.markRead(key), [store, key]);
  const loadOlder = useCallback(() => store.loadOlder(key), [store, key]);
  const setTyping = useCallback((isTyping = true) => store.setTyping(key, isTyping), [store, key]);
  return { ...state, send, markRead, loadOlder, setTyping };
}

/** The user's notifications (newest first) and unread count, in step across tabs and devices. */
export function useNotifications() {
  const store = useRealtimeStore();
  store.notificationsSlice(); // the slice exists before the first read
  useEffect(() => store.loadNotifications(), [store]);
  const state = useSlice(store, "notifications");
  const markRead = useCallback((id) => store.markNotificationRead(id), [store]);
  const markAllRead = useCallback(() => store.markAllNotificationsRead(), [store]);
  return { ...state, markRead, markAllRead };
}

/** A task's live status: subscribed to `task:{id}` while a component shows it. */
export function useTask(id) {
  const store = useRealtimeStore();
  const taskId = Number(id);
  useEffect(() => {
    store.acquireTask(taskId);
    return () => store.releaseTask(taskId);
  }, [store, taskId]);
  const state = useSlice(store, `task:${taskId}`);
  return state ?? { id: taskId, task: null, status: null, loading: true, error: null };
}
