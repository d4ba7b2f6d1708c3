// The task board: cards per status that move live, a form to add a task to a
// project you lead, and an empty state for someone with no tasks yet.

import { api, el, startPage } from "/static/qw-demo.js";

const { rt, me } = await startPage();
const STATUSES = ["open", "in_progress", "review", "done", "cancelled"];
const LABELS = { open: "Open", in_progress: "In progress", review: "Review", done: "Done", cancelled: "Cancelled" };
// The workflow of SPEC §3; the server refuses anything else with 409.
const NEXT = {
  open: ["in_progress", "cancelled"],
  in_progress: ["review", "cancelled"],
  review: ["done", "in_progress", "cancelled"],
  done: [],
  cancelled: [],
};
const board = document.getElementById("board");
const errorLine = document.getElementById("board-error");
const emptyState = document.getElementById("board-empty");
const form = document.getElementById("new-task");
const columns = {};
for (const status of STATUSES) {
  columns[status] = el("div", { className: "cards" });
  board.append(
    el("section", { className: "column", dataset: { status } }, el("h3", { text: LABELS[status] }), columns[status]),
  );
}
const tasks = new Map(); // id → {task, node}
const projects = new Map(); // id → project

function place(task) {
  let entry = tasks.get(task.id);
  if (!entry) {
    const project = projects.get(task.project);
    const node = el(
      "article",
      { className: "card", dataset: { taskId: task.id } },
      el("div", { className: "title", text: task.title }),
      el("div", { className: "muted", text: `#${task.id} · ${project ? project.title : `project ${task.project}`}` }),
      el("div", { className: "actions" }),
    );
    entry = { task, node };
    tasks.set(task.id, entry);
  }
  entry.task = { ...entry.task, ...task };
  const { node } = entry;
  node.querySelector(".actions").replaceChildren(
    ...NEXT[entry.task.status].map((status) =>
      el("button", {
        type: "button",
        text: `Move to ${LABELS[status]}`,
        dataset: { to: status },
        onclick: () => move(task.id, status),
      }),
    ),
  );
  node.dataset.status = entry.task.status;
  if (!node.parentElement) {
    columns[entry.task.status].append(node);
  } else if (node.parentElement !== columns[entry.task.status]) {
    columns[entry.task.status].prepend(node);
    node.classList.remove("moved");
    void node.offsetWidth; // restart the highlight
    node.classList.add("moved");
  }
  emptyState.hidden = true;
}

async function move(taskId, status) {
  errorLine.textContent = "";
  const { ok, status: code, data } = await api(`/api/tasks/${taskId}/status/`, { method: "PATCH", body: { status } });
  if (ok) place(data);
  else errorLine.textContent = code === 409 ? `Not allowed: ${data.detail}` : `Could not change the status (${code}).`;
}

async function load() {
  const [projectList, taskList] = await Promise.all([
    api("/api/projects/?page_size=500"),
    api("/api/tasks/?page_size=500"),
  ]);
  for (const p of projectList.data?.results || []) {
    projects.set(p.id, p);
    // Changes by anyone on the project, restored by the client on every new socket.
    rt.send({ type: "subscribe", channel: `project:${p.id}` });
  }
  for (const t of [...(taskList.data?.results || [])].sort((a, b) => a.id - b.id)) place(t);
  emptyState.hidden = tasks.size > 0;
  const mine = [...projects.values()].filter((p) => p.author === me.id);
  form.project.replaceChildren(...mine.map((p) => el("option", { value: p.id, text: p.title })));
  form.hidden = mine.length === 0;
}

const freelancers = document.getElementById("freelancers");
form.freelancer.addEventListener("input", async () => {
  const q = form.freelancer.value.trim();
  if (!q) return;
  const { ok, data } = await api(`/api/users/?q=${encodeURIComponent(q)}`);
  if (ok) freelancers.replaceChildren(...data.map((u) => el("option", { value: u.username, dataset: { id: u.id } })));
});

form.addEventListener("submit", async (event) => {
  event.preventDefault();
  errorLine.textContent = "";
  const body = { project: Number(form.project.value), title: form.title.value.trim() };
  const who = form.freelancer.value.trim();
  if (who) {
    const { data } = await api(`/api/users/?q=${encodeURIComponent(who)}`);
    const match = (data || []).find((u) => u.username === who);
    if (!match) {
      errorLine.textContent = `Nobody is called "${who}".`;
      return;
    }
    body.freelancer = match.id;
  }
  const { ok, data } = await api("/api/tasks/", { method: "POST", body });
  if (!ok) {
    errorLine.textContent = `Could not add the task: ${
      Object.values(data || {})
        .flat()
        .join(" ") || "try again"
    }`;
    return;
  }
  place(data);
  form.title.value = "";
  form.freelancer.value = "";
});

rt.on("task_status_update", (u) => {
  if (tasks.has(u.task_id)) place({ id: u.task_id, status: u.status });
  else load();
});
// Back from an outage: missed changes arrive in the replay; a resync needs a reload.
rt.on("resync_required", load);
await load();
// /tasks/{id} (a notification's link): that card, in view and marked.
const focused = location.pathname.match(/^\/tasks\/(\d+)$/);
const card = focused && tasks.get(Number(focused[1]))?.node;
if (card) {
  card.classList.add("focus");
  card.scrollIntoView({ block: "center" });
}
document.body.dataset.ready = "1";
