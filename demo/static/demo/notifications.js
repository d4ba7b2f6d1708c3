// The notifications page: the list, live arrivals, read on any device, links followed.

import { api, el, safeLink, startPage } from "/static/qw-demo.js";
import { currentSubscription, disablePush, enablePush, pushSupported } from "/static/qw-push.js";

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

// --- while I am away (SPEC §10): this device's Web Push and the user's settings ---
const pushSwitch = document.getElementById("push-device");
const pushStatus = document.getElementById("push-status");
if (!pushSupported()) {
  pushSwitch.disabled = true;
  pushStatus.textContent = "This browser cannot receive Web Push.";
} else {
  pushSwitch.checked = Notification.permission === "granted" && Boolean(await currentSubscription());
  pushSwitch.addEventListener("change", async () => {
    pushSwitch.disabled = true;
    pushStatus.textContent = "";
    if (pushSwitch.checked) {
      const problem = await enablePush(api);
      pushSwitch.checked = !problem;
      pushStatus.textContent = problem || "This device gets a notification while you are away.";
    } else {
      await disablePush(api);
      pushStatus.textContent = "This device gets no more notifications.";
    }
    pushSwitch.disabled = false;
  });
}

const form = document.getElementById("settings-form");
const field = (id) => document.getElementById(id);
const settingsStatus = field("settings-status");

function showSettings(s) {
  field("set-email").value = s.email;
  field("set-push").value = s.push;
  field("set-hide").checked = s.hide_content;
  field("quiet-on").checked = Boolean(s.quiet_hours);
  if (s.quiet_hours) {
    field("quiet-start").value = s.quiet_hours.start;
    field("quiet-end").value = s.quiet_hours.end;
    field("quiet-tz").value = s.quiet_hours.tz;
  }
}

form.addEventListener("submit", async (event) => {
  event.preventDefault();
  const body = {
    email: field("set-email").value,
    push: field("set-push").value,
    hide_content: field("set-hide").checked,
    quiet_hours: field("quiet-on").checked
      ? { start: field("quiet-start").value, end: field("quiet-end").value, tz: field("quiet-tz").value }
      : null,
  };
  const { ok, data } = await api("/api/notification-settings/", { method: "PATCH", body });
  settingsStatus.className = ok ? "muted" : "error";
  settingsStatus.textContent = ok ? "Saved." : `Not saved: ${JSON.stringify(data)}`;
  if (ok) showSettings(data);
});

field("quiet-tz").value = Intl.DateTimeFormat().resolvedOptions().timeZone || "UTC";
const current = await api("/api/notification-settings/");
if (current.ok) showSettings(current.data);
form.dataset.ready = "1";
