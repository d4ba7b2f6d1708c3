// The notifications page: the list, live arrivals, read on any device, links followed.

import { api, el, safeLink, startPage } from "/static/qw-demo.js";

const { rt } = await startPage();
const list = document.getElementById("list");
const empty = document.getElementById("list-empty");
const items = new Map(); // id → li

function show(n, { top = false } = {}) {
  if (items.has(n.id)) return;
  const read = () => api(`/api/notifications/${n.id}/read/`, { method: "POST" });
  const link = safeLink(n.link);
  const title = link
    ? el("a", { className: "title", href: link, text: n.title, onclick: read })
    : el("strong", { text: n.title });
  const li = el(
    "li",
    { className: n.read_at ? "" : "unread", dataset: { id: n.id } },
    el(
      "div",
      { className: "body" },
      title,
      el("div", { text: n.message }),
      el("div", { className: "muted when", text: new Date(n.created_at).toLocaleString() }),
    ),
    el("button", { type: "button", text: "Mark read", hidden: Boolean(n.read_at), onclick: read }),
  );
  items.set(n.id, li);
  if (top) list.prepend(li);
  else list.append(li);
  empty.hidden = true;
}

function markRead(ids) {
  for (const [id, li] of items) {
    if (ids === "all" || ids.includes(id)) {
      li.classList.remove("unread");
      li.querySelector("button").hidden = true;
    }
  }
}

async function load() {
  const { data } = await api("/api/notifications/");
  for (const n of data?.results || []) show(n);
  empty.hidden = items.size > 0;
}

rt.on("notification", (f) => show({ id: f.notification_id, ...f }, { top: true }));
rt.on("notification_read", (f) => markRead(f.all ? "all" : f.notification_ids));
document
  .getElementById("read-all")
  .addEventListener("click", () => api("/api/notifications/read-all/", { method: "POST" }));
await load();
document.body.dataset.ready = "1";
