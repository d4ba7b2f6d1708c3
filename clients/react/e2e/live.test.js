// The bindings against a real server process, with jsdom's WebSocket (the `ws` package
// underneath) and Node's fetch. tests/test_react_client.py starts the server, makes the
// users and the task, and runs this file with:
//   QW_E2E_HTTP  http://127.0.0.1:<port>   QW_E2E_ALICE_TOKEN / QW_E2E_BOB_TOKEN (access JWTs)
//   QW_E2E_ALICE_ID / QW_E2E_BOB_ID        QW_E2E_TASK_ID (a task of alice's project, open)
import "../testing/dom.js";
import assert from "node:assert/strict";
import { after, test } from "node:test";
import { act, cleanup, render, screen, waitFor } from "@testing-library/react";
import { StrictMode, createElement as h } from "react";
import { QWRealtime } from "../../../realtime/static/qw-realtime.js";
import { RealtimeProvider, useConversation, useRealtime, useTask } from "../src/index.js";

function env(name) {
  const value = process.env[name];
  if (!value) throw new Error(`${name} is not set: run tests/test_react_client.py`);
  return value;
}

const base = env("QW_E2E_HTTP");
const alice = { token: env("QW_E2E_ALICE_TOKEN"), id: Number(env("QW_E2E_ALICE_ID")) };
const bob = { token: env("QW_E2E_BOB_TOKEN"), id: Number(env("QW_E2E_BOB_ID")) };
const taskId = Number(env("QW_E2E_TASK_ID"));
const within = { timeout: 15000, interval: 50 };

async function rest(token, path, init = {}) {
  const response = await fetch(base + path, {
    ...init,
    headers: { "Content-Type": "application/json", Authorization: `Bearer ${token}`, ...(init.headers || {}) },
  });
  if (!response.ok)
    throw new Error(`${init.method ?? "GET"} ${path}: HTTP ${response.status} ${await response.text()}`);
  return response.status === 204 ? null : response.json();
}

const sockets = [];
class RecordedWebSocket extends globalThis.WebSocket {
  constructor(...args) {
    super(...args);
    sockets.push(this);
  }
}

const client = new QWRealtime({
  token: alice.token,
  url: `${base.replace(/^http/, "ws")}/ws/`,
  WebSocketImpl: RecordedWebSocket,
  backoffBaseMs: 100,
  backoffCapMs: 200,
});

after(() => {
  act(() => client.close());
  cleanup();
});

function Page() {
  const realtime = useRealtime();
  const chat = useConversation({ with: bob.id });
  const task = useTask(taskId);
  globalThis.chat = chat;
  return h(
    "main",
    null,
    h("p", { "data-testid": "state" }, realtime.label),
    h("p", { "data-testid": "task" }, `task ${task.status}`),
    h(
      "ul",
      null,
      chat.messages.map((m) =>
        h("li", { key: m.message_id ?? m.client_msg_id }, `${m.content}|${m.status ?? "theirs"}`),
      ),
    ),
  );
}

const shown = () => screen.queryAllByRole("listitem").map((li) => li.textContent);

test("a live conversation, a reconnect with resume and a task, against a real server", async () => {
  render(
    h(
      StrictMode,
      null,
      h(RealtimeProvider, { client, fetchJson: (path, init) => rest(alice.token, path, init) }, h(Page)),
    ),
  );
  await waitFor(() => assert.equal(screen.getByTestId("state").textContent, "Connected"), within);
  await waitFor(() => assert.equal(screen.getByTestId("task").textContent, "task open"), within);

  await rest(bob.token, "/api/chat/messages/", {
    method: "POST",
    body: JSON.stringify({ receiver_id: alice.id, content: "hello alice", client_msg_id: "e2e-bob-1" }),
  });
  await waitFor(() => assert.deepEqual(shown(), ["hello alice|theirs"]), within);

  act(() => {
    globalThis.chat.send("hi bob");
  });
  await waitFor(() => assert.deepEqual(shown(), ["hello alice|theirs", "hi bob|sent"]), within);

  // The network drops the socket; bob writes while alice is away.
  const first = sockets.length;
  act(() => sockets.at(-1).close());
  await rest(bob.token, "/api/chat/messages/", {
    method: "POST",
    body: JSON.stringify({ receiver_id: alice.id, content: "while you were away", client_msg_id: "e2e-bob-2" }),
  });
  await waitFor(
    () => assert.deepEqual(shown(), ["hello alice|theirs", "hi bob|sent", "while you were away|theirs"]),
    within,
  );
  assert.ok(sockets.length > first, "a new socket");
  assert.match(sockets.at(-1).url, /last_seq=\d+/, "the new socket resumed");

  await rest(alice.token, `/api/tasks/${taskId}/status/`, {
    method: "PATCH",
    body: JSON.stringify({ status: "in_progress" }),
  });
  await waitFor(() => assert.equal(screen.getByTestId("task").textContent, "task in_progress"), within);

  // What the server stored: each message once.
  const history = await rest(bob.token, `/api/chat/messages/?with=${alice.id}`);
  assert.deepEqual(history.results.map((m) => m.content).reverse(), ["hello alice", "hi bob", "while you were away"]);
  assert.equal(sockets.filter((ws) => ws.readyState === ws.OPEN).length, 1, "one socket open");
});
