// The chat page: conversations, people search, history (newest 50, older on
// scroll), live messages in server order, typing, ticks, and what was not sent;
// edits and deletions in place, files with upload progress, mentions of me (SPEC §11).

import { SendRefused, insertionIndex } from "/static/qw-protocol.js";
import { accessToken, api, el, startPage } from "/static/qw-demo.js";

const { rt, me, recentChat } = await startPage();
const names = new Map(); // user id → username
const list = document.getElementById("contacts");
const box = document.getElementById("messages");
const text = document.getElementById("text");
const typingLine = document.getElementById("typing");
const composerError = document.getElementById("composer-error");
const olderButton = document.getElementById("older");
let current = null; // {kind: "user"|"room", id, name}
let shown = new Map(); // message_id → element
let pendingShown = new Map(); // client_msg_id → element
let olderUrl = null;

const TICKS = { pending: "sending", sent: "✓", delivered: "✓✓", read: "✓✓ read" };
const TICK_ORDER = ["pending", "sent", "delivered", "read"];

const key = (c) => `${c.kind}:${c.id}`;
const userName = (id) => names.get(id) || `user ${id}`;
const belongs = (m) =>
  current &&
  (current.kind === "room"
    ? m.room_id === current.id
    : !m.room_id &&
      ((m.sender_id === me.id && m.receiver_id === current.id) ||
        (m.sender_id === current.id && m.receiver_id === me.id)));

// SPEC §10: a muted conversation sends no push or email; it still counts as unread.
const mutedConversations = new Map(); // key → muted
const muteButton = document.getElementById("mute");

function showMute(contact) {
  const muted = Boolean(mutedConversations.get(key(contact)));
  // A toggle button: one name, its state in aria-pressed (and the look).
  muteButton.hidden = false;
  muteButton.setAttribute("aria-pressed", String(muted));
}

muteButton.addEventListener("click", async () => {
  if (!current) return;
  const contact = current;
  const muted = Boolean(mutedConversations.get(key(contact)));
  const body = contact.kind === "room" ? { room: contact.id } : { with: contact.id };
  const { ok } = await api("/api/chat/mutes/", { method: muted ? "DELETE" : "POST", body });
  if (!ok) return;
  mutedConversations.set(key(contact), !muted);
  if (current === contact) showMute(contact);
});

function contactButton(contact, unread) {
  const button = el(
    "button",
    { type: "button", dataset: { key: key(contact) }, onclick: () => open(contact) },
    el("span", { text: contact.name }),
    el("span", { className: "badge", text: String(unread), hidden: !unread }),
  );
  if (current && key(current) === key(contact)) {
    button.classList.add("active");
    button.querySelector(".badge").hidden = true; // shown here, so being read
  }
  return button;
}

async function loadContacts() {
  const rooms = await api("/api/chat/rooms/");
  for (const room of rooms.data || []) {
    for (const member of room.members || []) names.set(member.id, member.username);
  }
  const { data } = await api("/api/chat/conversations/");
  list.replaceChildren();
  for (const c of data || []) {
    const contact =
      c.type === "room"
        ? { kind: "room", id: c.room.id, name: `# ${c.room.name}` }
        : { kind: "user", id: c.user.id, name: c.user.username };
    if (contact.kind === "user") names.set(contact.id, contact.name);
    mutedConversations.set(key(contact), c.muted);
    list.append(el("li", {}, contactButton(contact, c.unread_count)));
  }
  if (!list.children.length) list.append(el("li", { className: "muted empty", text: "No conversations yet." }));
  if (current?.kind === "user" && names.has(current.id)) {
    current.name = names.get(current.id);
    document.getElementById("title").textContent = current.name;
  }
  for (const who of box.querySelectorAll(".who")) {
    const id = Number(who.dataset.userId);
    if (names.has(id)) who.textContent = `${names.get(id)} · `;
  }
}

function tick(node, status) {
  const mark = node.querySelector(".tick");
  if (!mark || mark.dataset.status === "failed") return;
  if (TICK_ORDER.indexOf(status) < TICK_ORDER.indexOf(mark.dataset.status || "pending")) return;
  mark.dataset.status = status;
  mark.textContent = TICKS[status];
}

/** Put a message where the server orders it: by id; not yet stored ones last. */
function place(node) {
  const id = node.dataset.messageId ? Number(node.dataset.messageId) : null;
  const atBottom = box.scrollHeight - box.scrollTop - box.clientHeight < 40;
  const others = [...box.querySelectorAll(".msg")].filter((other) => other !== node);
  const at = insertionIndex(
    others.map((other) => (other.dataset.messageId ? Number(other.dataset.messageId) : null)),
    id,
  );
  if (at < others.length) box.insertBefore(node, others[at]);
  else box.append(node);
  if (at === others.length && (atBottom || node.classList.contains("mine"))) box.scrollTop = box.scrollHeight;
}

function render(m, { pending = false } = {}) {
  if (m.message_id && shown.has(m.message_id)) return shown.get(m.message_id);
  let node = m.client_msg_id && pendingShown.get(m.client_msg_id);
  const mine = m.sender_id === me.id;
  const fresh = !node;
  if (fresh) {
    const who = mine ? "" : `${userName(m.sender_id)} · `;
    const time = m.timestamp || m.created_at;
    node = el(
      "div",
      { className: `msg${mine ? " mine" : ""}` },
      el("span", { className: "content" }, ...contentNodes(m.content)), // text, never HTML
      el("div", { className: "files" }),
      el(
        "span",
        { className: "meta" },
        el("span", { className: "who", text: who, dataset: { userId: m.sender_id } }),
        `${time ? new Date(time).toLocaleTimeString() : ""} `,
        el("span", { className: "tick" }),
      ),
    );
    if (!mine) node.querySelector(".tick").remove();
  }
  if (m.client_msg_id && mine) pendingShown.set(m.client_msg_id, node);
  const moved = m.message_id && node.dataset.messageId !== String(m.message_id);
  if (m.message_id) {
    node.dataset.messageId = m.message_id;
    shown.set(m.message_id, node);
  }
  if (fresh || moved) place(node);
  if (mine) tick(node, m.read_at ? "read" : m.delivered_at ? "delivered" : pending ? "pending" : "sent");
  if (m.attachments) showFiles(node, m.attachments);
  if (m.mentions) node.classList.toggle("mention-me", m.mentions.includes(me.id));
  if (m.edited_at) markEdited(node);
  if (mine && m.message_id) addActions(node, m.message_id);
  return node;
}

const mentionOfMe = new RegExp(`(@${me.username.replace(/[.*+?^${}()|[\]\\]/g, "\\$&")})(?![\\w.@+-])`, "g");

/** The text as text nodes, a mention of me marked (still text, never HTML). */
function contentNodes(content) {
  return (content || "")
    .split(mentionOfMe)
    .map((part, index) => (index % 2 ? el("mark", { className: "mention", text: part }) : part));
}

function sizeText(bytes) {
  if (bytes < 1024) return `${bytes} B`;
  if (bytes < 1024 * 1024) return `${(bytes / 1024).toFixed(1)} KB`;
  return `${(bytes / 1024 / 1024).toFixed(1)} MB`;
}

const PREVIEWED = new Set(["image/png", "image/jpeg", "image/gif", "image/webp"]);

function showFiles(node, attachments) {
  const files = node.querySelector(".files");
  files.replaceChildren(
    ...attachments.map((file) => {
      const link = el("a", { href: file.url, download: file.name, text: `${file.name} (${sizeText(file.size)})` });
      if (!PREVIEWED.has(file.content_type)) return link;
      // The link's signature runs out after a few minutes: the preview is loaded now.
      return el("div", {}, el("img", { src: file.url, alt: `Preview of ${file.name}` }), link);
    }),
  );
}

function markEdited(node) {
  if (node.querySelector(".edited")) return;
  node.querySelector(".meta").prepend(el("span", { className: "edited", text: "edited · " }));
}

function addActions(node, messageId) {
  if (node.querySelector(".actions")) return;
  const edit = el("button", {
    type: "button",
    text: "Edit",
    ariaLabel: "Edit this message",
    onclick: () => startEdit(node, messageId),
  });
  const remove = el("button", { type: "button", text: "Delete", ariaLabel: "Delete this message" });
  remove.onclick = async () => {
    // Two steps: the first press asks, the second deletes for everyone.
    if (remove.dataset.confirm !== "1") {
      remove.dataset.confirm = "1";
      remove.textContent = "Delete for everyone?";
      remove.ariaLabel = "Confirm: delete this message for everyone";
      return;
    }
    const { ok } = await api(`/api/chat/messages/${messageId}/`, { method: "DELETE" });
    if (ok) forget(messageId);
    else composerError.textContent = "This message could not be deleted.";
  };
  remove.addEventListener("blur", () => {
    remove.dataset.confirm = "";
    remove.textContent = "Delete";
    remove.ariaLabel = "Delete this message";
  });
  node.append(el("div", { className: "actions" }, edit, remove));
}

function forget(messageId) {
  shown.get(messageId)?.remove();
  shown.delete(messageId);
  if (editing?.id === messageId) stopEdit();
}

// --- editing one's own message: the composer holds its text until saved or cancelled ---------
let editing = null; // {id, draft}
const editingLine = document.getElementById("editing");

function startEdit(node, messageId) {
  if (!editing) editing = { draft: text.value };
  editing.id = messageId;
  text.value = node.querySelector(".content").textContent;
  editingLine.hidden = false;
  document.getElementById("send").textContent = "Save";
  text.focus();
}

function stopEdit() {
  if (!editing) return;
  text.value = editing.draft;
  editing = null;
  editingLine.hidden = true;
  document.getElementById("send").textContent = "Send";
}
document.getElementById("cancel-edit").addEventListener("click", () => {
  stopEdit();
  text.focus();
});

async function saveEdit() {
  const { id } = editing;
  const { ok, status, data } = await api(`/api/chat/messages/${id}/`, {
    method: "PATCH",
    body: { content: text.value },
  });
  if (ok) {
    updated({ message_id: id, content: data.content, edited_at: data.edited_at, mentions: data.mentions });
    stopEdit();
    return;
  }
  composerError.textContent =
    status === 409
      ? "Too late to edit: messages can be edited for an hour after sending."
      : `Not saved: ${data?.content?.[0] || data?.detail || "the server refused the edit"}`;
}

function updated(u) {
  const node = shown.get(u.message_id);
  if (!node) return;
  node.querySelector(".content").replaceChildren(...contentNodes(u.content));
  if (u.mentions) node.classList.toggle("mention-me", u.mentions.includes(me.id));
  markEdited(node);
}

function markRead(m) {
  if (m.sender_id !== me.id && m.message_id && !document.hidden) {
    rt.send({ type: "read_receipt", message_id: m.message_id });
  }
}

function historyUrl(contact) {
  const query = contact.kind === "room" ? `room=${contact.id}` : `with=${contact.id}`;
  return `/api/chat/messages/?${query}`;
}

async function open(contact) {
  current = contact;
  shown = new Map();
  pendingShown = new Map();
  olderUrl = null;
  olderButton.hidden = true;
  box.replaceChildren(olderButton);
  typingLine.textContent = "";
  composerError.textContent = "";
  const title = document.getElementById("title");
  title.textContent = contact.name;
  title.classList.remove("muted");
  showMute(contact);
  text.disabled = false;
  document.getElementById("send").disabled = false;
  attachButton.disabled = false;
  stopEdit();
  clearUploads();
  for (const b of list.querySelectorAll("button")) {
    const here = b.dataset.key === key(contact);
    b.classList.toggle("active", here);
    // Opening the conversation reads it.
    if (here) b.querySelector(".badge").hidden = true;
  }
  const { ok, data } = await api(historyUrl(contact));
  if (current !== contact) return;
  if (!ok) {
    box.append(el("p", { className: "error", text: "No such conversation." }));
    return;
  }
  const history = [...data.results].reverse();
  for (const m of history) render(m);
  // Frames that came before (or while) the history loaded: a late replay goes in its place.
  for (const m of recentChat) if (belongs(m)) render(m);
  for (const p of rt.pending()) {
    const mine = { ...p, sender_id: me.id };
    if (belongs(mine)) render(mine, { pending: true });
  }
  if (!box.querySelector(".msg")) {
    box.append(el("p", { className: "muted empty", text: "No messages yet. Say hello." }));
  }
  olderUrl = data.next;
  olderButton.hidden = !olderUrl;
  box.scrollTop = box.scrollHeight;
  const last = history.filter((m) => m.sender_id !== me.id).pop();
  if (last) markRead(last);
  text.focus();
}

/** The page before the oldest shown: scrolling up reads further back. */
async function loadOlder() {
  if (!olderUrl || loadOlder.busy) return;
  loadOlder.busy = true;
  const contact = current;
  const { ok, data } = await api(olderUrl);
  loadOlder.busy = false;
  if (!ok || current !== contact) return;
  const before = box.scrollHeight;
  const top = box.scrollTop;
  for (const m of data.results) render(m);
  box.scrollTop = top + (box.scrollHeight - before);
  olderUrl = data.next;
  olderButton.hidden = !olderUrl;
}
olderButton.addEventListener("click", loadOlder);
box.addEventListener("scroll", () => {
  if (box.scrollTop < 60) loadOlder();
});

rt.on("chat_message", (m) => {
  if (m.sender_id !== me.id) rt.send({ type: "message_received", message_id: m.message_id });
  if (belongs(m)) {
    box.querySelector(".empty")?.remove();
    render(m);
    if (m.sender_id !== me.id) {
      typingLine.textContent = "";
      markRead(m);
    }
  }
  const counterpart = m.room_id ? null : m.sender_id === me.id ? m.receiver_id : m.sender_id;
  const listed = list.querySelector(`[data-key="${m.room_id ? `room:${m.room_id}` : `user:${counterpart}`}"]`);
  if (!belongs(m) || !listed || (counterpart && !names.has(counterpart))) loadContacts();
});
rt.on("message_sent", (ack) => {
  const node = pendingShown.get(ack.client_msg_id);
  if (!node) return;
  render({ client_msg_id: ack.client_msg_id, message_id: ack.message_id, sender_id: me.id });
  tick(node, "sent");
});
rt.on("message_status", (s) => {
  // A read receipt covers its message and every earlier one of the conversation.
  for (const [id, node] of shown) {
    if (id === s.message_id || (s.status === "read" && id < s.message_id && node.classList.contains("mine"))) {
      tick(node, s.status);
    }
  }
});
rt.on("message_deleted", (d) => forget(d.message_id));
rt.on("message_updated", updated);
// Read on another device: that conversation's badge is cleared here too.
rt.on("conversation_read", (r) => {
  const button = list.querySelector(`[data-key="${r.room ? `room:${r.room}` : `user:${r.with}`}"]`);
  const badge = button?.querySelector(".badge");
  if (badge) {
    badge.textContent = "0";
    badge.hidden = true;
  }
});
// Away longer than the server keeps events: history comes over REST again.
rt.on("resync_required", () => {
  loadContacts();
  if (current) open(current);
});
rt.on("send_failed", ({ frame, error }) => {
  const node = pendingShown.get(frame.client_msg_id);
  if (!node) return;
  node.classList.add("failed");
  const mark = node.querySelector(".tick");
  mark.dataset.status = "failed";
  mark.textContent = `not sent (${error.code})`;
  mark.title = error.message || "";
});

let typingTimer = null;
rt.on("typing_indicator", (t) => {
  const from = t.room_id
    ? t.room_id === current?.id && current.kind === "room"
    : current?.kind === "user" && t.sender_id === current.id;
  if (!from || t.sender_id === me.id) return;
  clearTimeout(typingTimer);
  typingLine.textContent = t.is_typing ? `${userName(t.sender_id)} is typing…` : "";
  if (t.is_typing)
    typingTimer = setTimeout(() => {
      typingLine.textContent = "";
    }, 6000);
});

const target = () => (current.kind === "room" ? { room_id: current.id } : { receiver_id: current.id });
let typingSentAt = 0;
let stopTyping = null;
text.addEventListener("input", () => {
  composerError.textContent = "";
  if (!current) return;
  if (Date.now() - typingSentAt > 2000) {
    typingSentAt = Date.now();
    rt.send({ type: "typing", ...target(), is_typing: true });
  }
  clearTimeout(stopTyping);
  stopTyping = setTimeout(() => {
    typingSentAt = 0;
    rt.send({ type: "typing", ...target(), is_typing: false });
  }, 3000);
});

function sendCurrent() {
  if (editing) {
    saveEdit();
    return;
  }
  if (uploads.some((u) => u.id === null)) {
    composerError.textContent = "Wait for the files to finish uploading.";
    return;
  }
  const files = uploads.map((u) => u.id);
  const content = text.value.trim() || uploads.map((u) => u.file.name).join(", ");
  if (!content || !current) return;
  let frame;
  try {
    frame = rt.send({ type: "chat_message", ...target(), content, ...(files.length ? { attachment_ids: files } : {}) });
  } catch (error) {
    if (!(error instanceof SendRefused)) throw error;
    // Kept in the box, so nothing typed is lost.
    composerError.textContent = `Not sent: ${error.message}`;
    return;
  }
  clearTimeout(stopTyping);
  typingSentAt = 0;
  box.querySelector(".empty")?.remove();
  render({ ...frame, sender_id: me.id, timestamp: new Date().toISOString() }, { pending: true });
  text.value = "";
  clearUploads();
}

// --- files: the paper clip picks them, each uploads at once with its progress shown ---------------
const attachButton = document.getElementById("attach");
const fileInput = document.getElementById("file");
const uploadList = document.getElementById("uploads");
let uploads = []; // {file, id (null while uploading), xhr, item}

function clearUploads() {
  for (const upload of uploads) if (upload.id === null) upload.xhr.abort();
  uploads = [];
  uploadList.replaceChildren();
}

function upload(file) {
  const progress = el("progress", { max: 100, value: 0, ariaLabel: `Uploading ${file.name}` });
  const entry = { file, id: null, xhr: new XMLHttpRequest() };
  const removeButton = el("button", {
    type: "button",
    text: "✕",
    ariaLabel: `Remove ${file.name}`,
    onclick: () => {
      if (entry.id === null) entry.xhr.abort();
      uploads = uploads.filter((u) => u !== entry);
      entry.item.remove();
    },
  });
  entry.item = el("li", {}, el("span", { text: `${file.name} (${sizeText(file.size)})` }), progress, removeButton);
  uploadList.append(entry.item);
  uploads.push(entry);
  const xhr = entry.xhr;
  xhr.upload.onprogress = (event) => {
    if (event.lengthComputable) progress.value = Math.round((100 * event.loaded) / event.total);
  };
  xhr.onload = () => {
    if (xhr.status === 201) {
      entry.id = JSON.parse(xhr.responseText).id;
      progress.value = 100;
      progress.ariaLabel = `${file.name} uploaded`;
      return;
    }
    uploads = uploads.filter((u) => u !== entry);
    entry.item.remove();
    composerError.textContent =
      xhr.status === 413 ? `${file.name} is over the 10 MB limit.` : `${file.name} could not be uploaded.`;
  };
  xhr.onerror = () => {
    uploads = uploads.filter((u) => u !== entry);
    entry.item.remove();
    composerError.textContent = `${file.name} could not be uploaded: no connection.`;
  };
  const body = new FormData();
  body.append("file", file);
  xhr.open("POST", "/api/chat/attachments/");
  xhr.setRequestHeader("Authorization", `Bearer ${accessToken()}`);
  xhr.send(body);
}

attachButton.addEventListener("click", () => fileInput.click());
fileInput.addEventListener("change", () => {
  composerError.textContent = "";
  for (const file of fileInput.files) upload(file);
  fileInput.value = "";
});
document.getElementById("composer").addEventListener("submit", (event) => {
  event.preventDefault();
  sendCurrent();
});
text.addEventListener("keydown", (event) => {
  if (event.key === "Escape" && editing) {
    stopEdit();
    return;
  }
  if (event.key === "Enter" && !event.shiftKey) {
    event.preventDefault();
    sendCurrent();
  }
});

// People search: type a name, pick a person.
const people = document.getElementById("people");
const found = document.getElementById("people-results");
let searchTimer = null;
people.addEventListener("input", () => {
  clearTimeout(searchTimer);
  searchTimer = setTimeout(async () => {
    const q = people.value.trim();
    if (!q) return found.replaceChildren();
    const { ok, data } = await api(`/api/users/?q=${encodeURIComponent(q)}`);
    if (!ok || people.value.trim() !== q) return;
    found.replaceChildren(
      ...(data.length ? data : [null]).map((user) =>
        user
          ? el(
              "li",
              {},
              el("button", {
                type: "button",
                text: user.username,
                onclick: () => {
                  names.set(user.id, user.username);
                  people.value = "";
                  found.replaceChildren();
                  open({ kind: "user", id: user.id, name: user.username });
                },
              }),
            )
          : el("li", { className: "muted", text: "Nobody by that name." }),
      ),
    );
  }, 150);
});

document.addEventListener("visibilitychange", () => {
  if (document.hidden || !current) return;
  const theirs = [...shown].filter(([, n]) => !n.classList.contains("mine")).map(([id]) => id);
  if (theirs.length) rt.send({ type: "read_receipt", message_id: Math.max(...theirs) });
});

await loadContacts();
const wanted = new URLSearchParams(location.search);
if (wanted.get("with")) {
  const id = Number(wanted.get("with"));
  open({ kind: "user", id, name: userName(id) });
} else if (wanted.get("room")) {
  const id = Number(wanted.get("room"));
  const button = list.querySelector(`[data-key="room:${id}"]`);
  open({ kind: "room", id, name: button ? button.firstChild.textContent : `room ${id}` });
}
document.body.dataset.ready = "1";
