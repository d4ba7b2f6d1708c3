// What every demo page shares: the stored tokens, REST calls, one realtime
// client, the navigation bar with the unread badge, and notification toasts.
// Everything user-supplied is put in the page with textContent, never as HTML.

import { QWSharedRealtime, jwtClaims } from "/static/qw-realtime.js";

const TOKENS_KEY = "qw.tokens";

export function storedTokens() {
  try {
    return JSON.parse(localStorage.getItem(TOKENS_KEY)) || null;
  } catch {
    return null;
  }
}

export function storeTokens(tokens) {
  localStorage.setItem(TOKENS_KEY, JSON.stringify(tokens));
}

export function signOut() {
  localStorage.removeItem(TOKENS_KEY);
  location.href = `/login/?next=${encodeURIComponent(location.pathname)}`;
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

let tokens = null;

async function refreshAccess() {
  const response = await fetch("/api/auth/token/refresh/", {
    method: "POST",
    headers: { "Content-Type": "application/json" },
    body: JSON.stringify({ refresh: tokens.refresh }),
  });
  if (!response.ok) return false;
  const body = await response.json();
  tokens = { access: body.access, refresh: body.refresh || tokens.refresh };
  storeTokens(tokens);
  return true;
}

/** A REST call with the access token; one refresh and retry on 401. */
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
  let response = await call();
  if (response.status === 401 && (await refreshAccess())) response = await call();
  if (response.status === 401) signOut();
  const data = response.headers.get("content-type")?.includes("json") ? await response.json() : null;
  return { ok: response.ok, status: response.status, data };
}

function toast(title, message) {
  const box = document.getElementById("toasts");
  const item = el("div", { className: "toast", role: "status" }, el("strong", { text: title }));
  if (message) item.append(el("div", { text: message }));
  box.append(item);
  setTimeout(() => item.remove(), 6000);
}

function setBadge(count) {
  const badge = document.getElementById("unread-badge");
  badge.textContent = String(count);
  badge.hidden = count <= 0;
}

/** Start a page: sign-in check, nav, realtime client, badge and toasts.
 *  Returns {rt, me, api}; `me` is {id, username}. */
export async function startPage() {
  tokens = storedTokens();
  if (!tokens?.access) {
    signOut();
    return new Promise(() => {});
  }
  const meResponse = await api("/api/me/");
  const me = meResponse.data;
  document.getElementById("whoami").textContent = me.username;
  document.getElementById("sign-out").addEventListener("click", () => signOut());

  // One socket for all the tabs of this browser (SPEC §8).
  const rt = new QWSharedRealtime({
    token: tokens.access,
    refreshToken: tokens.refresh,
    onTokens: (fresh) => {
      tokens = fresh;
      storeTokens(fresh);
    },
  });
  window.qw = rt; // for the console (and the browser tests)
  const stateLabel = document.getElementById("conn-state");
  const showState = () => {
    stateLabel.textContent = rt.state;
    stateLabel.dataset.state = rt.state;
  };
  rt.on("state", showState);
  showState();
  rt.on("auth_error", () => signOut());

  let unread = 0;
  const loadBadge = async () => {
    const { ok, data } = await api("/api/notifications/?unread=true&page_size=1");
    if (ok) {
      unread = data.unread_count;
      setBadge(unread);
    }
  };
  rt.on("notification", (frame) => {
    toast(frame.title, frame.message);
    setBadge(++unread);
  });
  // Read on any device: the count is the server's to tell.
  rt.on("notification_read", loadBadge);
  rt.on("resumed", loadBadge);
  rt.on("resync_required", loadBadge);
  await loadBadge();
  return { rt, me, claims: jwtClaims(tokens.access) };
}
