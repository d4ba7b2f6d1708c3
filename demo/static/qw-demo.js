// What every demo page shares: the stored tokens, REST calls, one realtime
// client, the navigation bar with the connection pill and the unread badge,
// notification toasts, and sign-out. Everything user-supplied is put in the
// page with textContent, never as HTML.

import { syncPush } from "/static/qw-push.js";
import { QWSharedRealtime } from "/static/qw-shared.js";

const TOKENS_KEY = "qw.tokens";

export function storedTokens() {
  try {
    return JSON.parse(localStorage.getItem(TOKENS_KEY)) || null;
  } catch {
    return null;
  }
}

export function storeTokens(fresh) {
  localStorage.setItem(TOKENS_KEY, JSON.stringify(fresh));
}

let tokens = null;
let rt = null;

/** Leave for the login page, which says why (`reason`: signed_out, expired, inactive). */
function toLogin(reason) {
  localStorage.removeItem(TOKENS_KEY);
  const next = encodeURIComponent(location.pathname + location.search);
  location.href = `/login/?reason=${reason}&next=${next}`;
}

/** End the session on the server (refresh token blacklisted, sockets closed) and in every tab. */
export async function signOut() {
  const current = tokens;
  rt?.endSession("signed_out");
  if (current?.refresh) {
    try {
      await fetch("/api/auth/logout/", {
        method: "POST",
        headers: { Authorization: `Bearer ${current.access}`, "Content-Type": "application/json" },
        body: JSON.stringify({ refresh: current.refresh }),
      });
    } catch {
      // Offline: the tokens are gone from this browser; the refresh token expires on its own.
    }
  }
  toLogin("signed_out");
}

/** Create an element: el("li", {className: "x", text: "…"}, child, …). */
export function el(tag, props = {}, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(props)) {
    if (key === "text") node.textContent = value;
    else if (key === "dataset") Object.assign(node.dataset, value);
    else if (key.startsWith("on")) node.addEventListener(key.slice(2), value);
    else node[key] = value;
  }
  node.append(...children);
  return node;
}

/** "ok", "denied" (sign in again) or "retry" (the server or the network is down for now). */
async function refreshAccess() {
  let response;
  try {
    response = await fetch("/api/auth/token/refresh/", {
      method: "POST",
      headers: { "Content-Type": "application/json" },
      body: JSON.stringify({ refresh: tokens.refresh }),
    });
  } catch {
    return "retry";
  }
  if (response.status === 400 || response.status === 401) return "denied";
  if (!response.ok) return "retry";
  const body = await response.json();
  tokens = { access: body.access, refresh: body.refresh || tokens.refresh };
  storeTokens(tokens);
  return "ok";
}

/** The current access token (for requests `api` cannot make, e.g. an upload with progress). */
export function accessToken() {
  return tokens?.access;
}

/** A REST call with the access token; one refresh and retry on 401; sign-out only when refused. */
export async function api(path, { method = "GET", body } = {}) {
  const call = () =>
    fetch(path, {
      method,
      headers: {
        Authorization: `Bearer ${tokens.access}`,
        ...(body === undefined ? {} : { "Content-Type": "application/json" }),
      },
      body: body === undefined ? undefined : JSON.stringify(body),
    });
  let response;
  try {
    response = await call();
    if (response.status === 401) {
      const outcome = await refreshAccess();
      if (outcome === "denied") toLogin("expired");
      if (outcome === "ok") response = await call();
    }
  } catch {
    return { ok: false, status: 0, data: null };
  }
  const data = response.headers.get("content-type")?.includes("json") ? await response.json() : null;
  return { ok: response.ok, status: response.status, data };
}

/** A notification's link, if it is one we can follow safely (same site or http(s)). */
export function safeLink(link) {
  if (typeof link !== "string" || !link) return null;
  if (link.startsWith("/") && !link.startsWith("//")) return link;
  try {
    const url = new URL(link);
    return url.protocol === "https:" || url.protocol === "http:" ? url.href : null;
  } catch {
    return null;
  }
}

function toast(title, message, rawLink) {
  const link = safeLink(rawLink);
  const box = document.getElementById("toasts");
  const item = link
    ? el("a", { className: "toast", href: link, role: "status" }, el("strong", { text: title }))
    : el("div", { className: "toast", role: "status" }, el("strong", { text: title }));
  if (message) item.append(el("div", { text: message }));
  box.append(item);
  setTimeout(() => item.remove(), 6000);
}

function setBadge(count) {
  const badge = document.getElementById("unread-badge");
  badge.textContent = String(count);
  badge.hidden = count <= 0;
}

/** The connection pill: what the state means for the person, with the retry countdown. */
function showConnection(pill) {
  let everOpen = false;
  let ticker = null;
  const paint = () => {
    pill.dataset.state = rt.state;
    clearInterval(ticker);
    if (rt.state === "open") {
      everOpen = true;
      pill.textContent = "Connected";
      return;
    }
    if (rt.state === "closed") {
      pill.textContent = "Offline";
      return;
    }
    const line = () => {
      const seconds = rt.retryAt ? Math.ceil((rt.retryAt - Date.now()) / 1000) : 0;
      const retry = seconds > 0 ? ` Retrying in ${seconds} s.` : "";
      pill.textContent = everOpen ? `Reconnecting… messages will be sent when back.${retry}` : `Connecting…${retry}`;
    };
    line();
    ticker = setInterval(line, 1000);
  };
  rt.on("state", paint);
  rt.on("retry", paint);
  paint();
}

/** Start a page: sign-in check, nav, realtime client, badge and toasts.
 *  Returns {rt, me, recentChat}; `me` is {id, username}; `recentChat` the chat frames received so far. */
export async function startPage(options = {}) {
  tokens = storedTokens();
  if (!tokens?.access) {
    toLogin("signed_out");
    return new Promise(() => {});
  }
  const meResponse = await api("/api/me/");
  if (!meResponse.ok) {
    document.getElementById("conn-state").textContent = "Server unreachable: reload to try again";
    return new Promise(() => {});
  }
  const me = meResponse.data;
  document.getElementById("whoami").textContent = me.username;
  document.getElementById("sign-out").addEventListener("click", () => signOut());
  // This device's push subscription, sent again: the browser may have renewed it.
  syncPush(api).catch(() => {});

  // One socket for all the tabs of this browser (SPEC §8).
  rt = new QWSharedRealtime({
    token: tokens.access,
    refreshToken: tokens.refresh,
    onTokens: (fresh) => {
      tokens = fresh;
      storeTokens(fresh);
    },
    ...options,
  });
  window.qw = rt; // for the console (and the browser tests)
  // Chat frames from the first moment (a replay can land before the page has
  // opened a conversation or fetched its history): the page merges them in.
  const recentChat = [];
  rt.on("chat_message", (frame) => {
    recentChat.push(frame);
    if (recentChat.length > 1000) recentChat.shift();
  });
  showConnection(document.getElementById("conn-state"));
  rt.on("auth_error", (event) => toLogin(event.code === 4003 ? "inactive" : "expired"));
  rt.on("session_end", () => toLogin("signed_out"));

  let unread = 0;
  const loadBadge = async () => {
    const { ok, data } = await api("/api/notifications/?unread=true&page_size=1");
    if (ok) {
      unread = data.unread_count;
      setBadge(unread);
    }
  };
  rt.on("notification", (frame) => {
    toast(frame.title, frame.message, frame.link);
    setBadge(++unread);
  });
  // Read on any device: the count is the server's to tell.
  rt.on("notification_read", loadBadge);
  rt.on("resumed", loadBadge);
  rt.on("resync_required", loadBadge);
  await loadBadge();
  return { rt, me, recentChat };
}
