import "../testing/dom.js";
import assert from "node:assert/strict";
import { afterEach, test } from "node:test";
import { act, cleanup, render, screen, waitFor } from "@testing-library/react";
import { StrictMode, createElement as h, useState } from "react";
import { RealtimeProvider, storeFor, useConversation, useNotifications, useRealtime, useTask } from "../src/index.js";
import { FakeSocket, badFrames, chatFrame, connected, fakeRest, historyRow, newClient } from "../testing/fake.js";

afterEach(() => {
  cleanup();
  // Every frame sent in the test is one the protocol document allows.
  assert.deepEqual(badFrames.splice(0), []);
});

const tick = (ms = 5) => act(() => new Promise((resolve) => setTimeout(resolve, ms)));

function Messages({ target }) {
  const conversation = useConversation(target);
  return h(
    "ul",
    { "aria-label": "messages" },
    conversation.messages.map((m) =>
      h("li", { key: m.message_id ?? m.client_msg_id }, `${m.message_id}:${m.content}:${m.status ?? "-"}`),
    ),
  );
}

function shown() {
  return screen.queryAllByRole("listitem").map((li) => li.textContent);
}

function app(client, rest, child, { strict = false } = {}) {
  const tree = h(RealtimeProvider, { client, fetchJson: rest.fetchJson }, child);
  return render(strict ? h(StrictMode, null, tree) : tree);
}

test("a task is subscribed once under StrictMode and unsubscribed after unmount", async () => {
  const client = newClient();
  const rest = fakeRest({ "/api/tasks/7/": { id: 7, status: "open", updated_at: "2026-12-05T00:00:00Z" } });
  function Task() {
    const task = useTask(7);
    return h("p", null, `status ${task.status}`);
  }
  const view = app(client, rest, h(Task), { strict: true });
  await tick();
  const ws = await connected(client);
  await tick();
  await screen.findByText("status open");
  assert.deepEqual(ws.sentOf("subscribe"), [{ type: "subscribe", channel: "task:7" }]);
  assert.deepEqual(ws.sentOf("unsubscribe"), []);
  assert.equal(FakeSocket.instances.length, 1, "no second socket");

  ws.deliver({
    type: "task_status_update",
    task_id: 7,
    project_id: 3,
    status: "in_progress",
    previous_status: "open",
    updated_by: 2,
    timestamp: "2026-12-06T00:00:01Z",
  });
  await screen.findByText("status in_progress");

  view.unmount();
  await tick();
  assert.deepEqual(ws.sentOf("unsubscribe"), [{ type: "unsubscribe", channel: "task:7" }]);
  assert.equal(ws.sentOf("subscribe").length, 1);
  act(() => client.close());
});

test("mounting and unmounting task views keeps subscribes and unsubscribes balanced", async () => {
  const client = newClient();
  const rest = fakeRest({
    "/api/tasks/1/": { id: 1, status: "open", updated_at: "2026-12-05T00:00:00Z" },
    "/api/tasks/2/": { id: 2, status: "review", updated_at: "2026-12-05T00:00:00Z" },
  });
  let setShown;
  function Board() {
    const [ids, set] = useState([1, 1, 2]);
    setShown = set;
    return h(
      "div",
      null,
      ids.map((id, i) => h(TaskCard, { key: `${id}-${i}`, id })),
    );
  }
  function TaskCard({ id }) {
    return h("span", null, `${id}:${useTask(id).status}`);
  }
  const view = app(client, rest, h(Board), { strict: true });
  await tick();
  const ws = await connected(client);
  await tick();
  // Two cards of task 1, one of task 2: one subscription each.
  assert.deepEqual(
    ws.sentOf("subscribe").map((f) => f.channel),
    ["task:1", "task:2"],
  );
  await act(() => setShown([2]));
  await tick();
  assert.deepEqual(
    ws.sentOf("unsubscribe").map((f) => f.channel),
    ["task:1"],
  );
  await act(() => setShown([1, 2]));
  await tick();
  assert.deepEqual(
    ws.sentOf("subscribe").map((f) => f.channel),
    ["task:1", "task:2", "task:1"],
  );
  view.unmount();
  await tick();
  const count = (type) => {
    const counts = {};
    for (const frame of ws.sentOf(type)) counts[frame.channel] = (counts[frame.channel] ?? 0) + 1;
    return counts;
  };
  assert.deepEqual(count("subscribe"), count("unsubscribe"));
  assert.deepEqual(count("unsubscribe"), { "task:1": 2, "task:2": 1 });
  act(() => client.close());
});

test("StrictMode's double mount leaves one listener on the client and one socket", async () => {
  const client = newClient();
  const rest = fakeRest({ "/api/chat/messages/": { next: null, previous: null, results: [] } });
  app(client, rest, h(Messages, { target: { with: 2 } }), { strict: true });
  const ws = await connected(client);
  await tick();
  ws.deliver(chatFrame({ message_id: 40 }));
  await tick();
  assert.deepEqual(shown(), ["40:message 40:-"]);
  // A second listener would answer the frame twice.
  assert.deepEqual(ws.sentOf("message_received"), [{ type: "message_received", message_id: 40 }]);
  assert.equal(client.listeners.get("*").size, 1);
  assert.equal(FakeSocket.instances.length, 1);
  assert.equal(storeFor(client), storeFor(client));
  act(() => client.close());
});

test("history and live frames show each message once, in server order", async () => {
  const client = newClient();
  const rest = fakeRest({
    "/api/chat/messages/": {
      next: null,
      previous: null,
      // Newest first, as the API pages it.
      results: [historyRow({ message_id: 11 }), historyRow({ message_id: 10 })],
    },
  });
  app(client, rest, h(Messages, { target: { with: 2 } }));
  const ws = await connected(client, { lastSeq: 0 });
  await tick();
  ws.deliver(chatFrame({ seq: 1, message_id: 12 }));
  ws.deliver(chatFrame({ seq: 2, message_id: 11 })); // also in the history page
  await tick();
  assert.deepEqual(shown(), ["10:message 10:-", "11:message 11:-", "12:message 12:-"]);
  assert.deepEqual(
    rest.calls.map((c) => c.path),
    ["/api/chat/messages/?with=2", "/api/chat/messages/?with=2"],
  );
  act(() => client.close());
});

test("a reconnect resumes from the last seq and shows each message once", async () => {
  const client = newClient();
  const rest = fakeRest({
    "/api/chat/messages/": { next: null, previous: null, results: [historyRow({ message_id: 10 })] },
  });
  app(client, rest, h(Messages, { target: { with: 2 } }));
  const first = await connected(client, { lastSeq: 4 });
  await tick();
  first.deliver(chatFrame({ seq: 5, message_id: 12 }));
  await tick();
  first.drop(1006);
  await tick(20);
  assert.equal(FakeSocket.instances.length, 2, "reconnected");
  const second = FakeSocket.instances[1];
  assert.equal(new URL(second.url).searchParams.get("last_seq"), "5");
  second.deliver({ type: "authenticated", user_id: 1, last_seq: 6, heartbeat_interval: 30, timestamp: "x" });
  // The server replays from 5: seq 5 again would be a duplicate if the client had not kept it.
  second.deliver(chatFrame({ seq: 5, message_id: 12 }));
  second.deliver(chatFrame({ seq: 6, message_id: 13 }));
  second.deliver({ type: "resumed", last_seq: 6, count: 1 });
  await tick();
  assert.deepEqual(shown(), ["10:message 10:-", "12:message 12:-", "13:message 13:-"]);
  act(() => client.close());
});

test("edits apply in place and deletions remove, even before the history page arrives", async () => {
  const client = newClient();
  let answer;
  const page = new Promise((resolve) => {
    answer = resolve;
  });
  const rest = fakeRest({ "/api/chat/messages/": () => page });
  client.on("state", () => {});
  app(client, rest, h(Messages, { target: { room: 5 } }));
  const ws = await connected(client, { lastSeq: 0 });
  await tick();
  // The history request is still out when the edit and the deletion arrive.
  ws.deliver({ type: "message_updated", seq: 1, message_id: 21, content: "fixed", edited_at: "2026-12-06T00:00:02Z" });
  ws.deliver({ type: "message_deleted", seq: 2, message_id: 22 });
  answer({
    next: null,
    previous: null,
    results: [
      historyRow({ message_id: 23, room_id: 5, receiver_id: null }),
      historyRow({ message_id: 22, room_id: 5, receiver_id: null }),
      historyRow({ message_id: 21, room_id: 5, receiver_id: null, content: "tpyo" }),
    ],
  });
  await tick();
  assert.deepEqual(shown(), ["21:fixed:-", "23:message 23:-"]);
  ws.deliver({ type: "message_updated", seq: 3, message_id: 23, content: "again", edited_at: "2026-12-06T00:00:03Z" });
  await tick();
  assert.deepEqual(shown(), ["21:fixed:-", "23:again:-"]);
  ws.deliver({ type: "message_deleted", seq: 4, message_id: 21 });
  await tick();
  assert.deepEqual(shown(), ["23:again:-"]);
  act(() => client.close());
});

test("after resync_required the history page replaces what it covers: gap edits and deletions show", async () => {
  const client = newClient();
  let page = { next: null, previous: null, results: [historyRow({ message_id: 51 }), historyRow({ message_id: 50 })] };
  const rest = fakeRest({ "/api/chat/messages/": () => page });
  app(client, rest, h(Messages, { target: { with: 2 } }));
  const ws = await connected(client, { lastSeq: 0 });
  await tick();
  assert.deepEqual(shown(), ["50:message 50:-", "51:message 51:-"]);
  // Away past retention: 50 was deleted and 51 edited meanwhile, and no frame says so.
  page = {
    next: null,
    previous: null,
    results: [
      historyRow({ message_id: 52 }),
      historyRow({ message_id: 51, content: "edited", edited_at: "2026-12-06T01:00:00Z" }),
    ],
  };
  ws.deliver({ type: "resync_required" });
  await tick();
  assert.deepEqual(shown(), ["51:edited:-", "52:message 52:-"]);
  act(() => client.close());
});

test("older pages load through the cursor; a read on another device clears the unread count", async () => {
  const client = newClient();
  const rest = fakeRest({
    // DRF's cursor links are absolute, with whatever host the server saw.
    "/api/chat/messages/": (path) =>
      path.includes("cursor=")
        ? { next: null, previous: null, results: [historyRow({ message_id: 3 })] }
        : {
            next: "http://127.0.0.1:8000/api/chat/messages/?cursor=abc&with=2",
            previous: null,
            results: [historyRow({ message_id: 5 }), historyRow({ message_id: 4 })],
          },
  });
  let chat;
  function Chat() {
    chat = useConversation({ with: 2 });
    return h("p", null, `${chat.messages.map((m) => m.message_id).join(",")} unread ${chat.unread}`);
  }
  app(client, rest, h(Chat));
  const ws = await connected(client, { lastSeq: 0 });
  await tick();
  await screen.findByText("4,5 unread 2");
  assert.equal(chat.hasMore, true);
  await act(() => chat.loadOlder());
  await screen.findByText("3,4,5 unread 3");
  assert.equal(chat.hasMore, false);
  assert.equal(rest.calls.at(-1).path, "/api/chat/messages/?cursor=abc&with=2");
  ws.deliver({ type: "conversation_read", seq: 1, with: 2, last_read_message_id: 4 });
  await screen.findByText("3,4,5 unread 1");
  act(() => client.close());
});

/** An empty conversation on screen; returns `send(text)`, which answers the frame as sent. */
function emptyChat(client, target) {
  const rest = fakeRest({ "/api/chat/messages/": { next: null, previous: null, results: [] } });
  let api;
  function Chat() {
    api = useConversation(target);
    return h(Messages, { target });
  }
  app(client, rest, h(Chat));
  return (text) => {
    let frame;
    act(() => {
      frame = api.send(text);
    });
    return frame;
  };
}

test("my message goes sending → sent → delivered → read", async () => {
  const client = newClient();
  const send = emptyChat(client, { with: 2 });
  await tick();
  const frame = send("hello bob");
  await tick();
  assert.deepEqual(shown(), ["null:hello bob:sending"], "queued while offline");
  const ws = await connected(client, { lastSeq: 0 });
  await tick();
  assert.equal(ws.sentOf("chat_message")[0].client_msg_id, frame.client_msg_id);
  ws.deliver({
    type: "message_sent",
    message_id: 30,
    client_msg_id: frame.client_msg_id,
    timestamp: "t",
    duplicate: false,
  });
  await tick();
  assert.deepEqual(shown(), ["30:hello bob:sent"]);
  ws.deliver(
    chatFrame({
      seq: 1,
      message_id: 30,
      sender_id: 1,
      receiver_id: 2,
      content: "hello bob",
      client_msg_id: frame.client_msg_id,
    }),
  );
  ws.deliver({ type: "message_status", seq: 2, message_id: 30, status: "delivered", by: 2, timestamp: "t" });
  await tick();
  assert.deepEqual(shown(), ["30:hello bob:delivered"]);
  ws.deliver({ type: "message_status", seq: 3, message_id: 30, status: "read", by: 2, timestamp: "t" });
  await tick();
  assert.deepEqual(shown(), ["30:hello bob:read"]);
  assert.deepEqual(ws.sentOf("message_received"), [], "no receipt for my own message");
  act(() => client.close());
});

test("a message the server refuses is shown as failed", async () => {
  const client = newClient();
  const send = emptyChat(client, { with: 9 });
  const ws = await connected(client);
  await tick();
  const frame = send("to nobody");
  ws.deliver({ type: "error", code: "not_found", message: "no such user", ref: frame.client_msg_id });
  await tick();
  assert.deepEqual(shown(), ["null:to nobody:failed"]);
  act(() => client.close());
});

test("notifications: list, unread count, and reads from other tabs and devices", async () => {
  const client = newClient();
  const rest = fakeRest({
    "/api/notifications/": {
      next: null,
      previous: null,
      unread_count: 1,
      results: [
        {
          id: 2,
          notification_type: "task_status",
          title: "B",
          message: "",
          link: "/tasks/1",
          created_at: "t",
          read_at: null,
        },
        {
          id: 1,
          notification_type: "task_status",
          title: "A",
          message: "",
          link: "/tasks/1",
          created_at: "t",
          read_at: "t",
        },
      ],
    },
  });
  function Bell() {
    const { items, unreadCount } = useNotifications();
    return h("p", null, `${unreadCount} unread of ${items.map((n) => n.id).join(",")}`);
  }
  app(client, rest, h(Bell), { strict: true });
  await tick();
  const ws = await connected(client);
  await screen.findByText("1 unread of 2,1");
  ws.deliver({
    type: "notification",
    seq: 1,
    notification_id: 3,
    notification_type: "mention",
    title: "C",
    message: "@alice",
    link: "/chat/room/5",
    created_at: "t",
  });
  await screen.findByText("2 unread of 3,2,1");
  ws.deliver({ type: "notification_read", seq: 2, notification_ids: [2], timestamp: "t" });
  await screen.findByText("1 unread of 3,2,1");
  ws.deliver({ type: "notification_read", seq: 3, all: true, timestamp: "t" });
  await screen.findByText("0 unread of 3,2,1");
  assert.equal(
    rest.calls.filter((c) => c.path === "/api/notifications/").length,
    2,
    "fetched, then once more after open",
  );
  act(() => client.close());
});

test("useRealtime reads the connection as a person would", async () => {
  const client = newClient(1, { backoffBaseMs: 60000, backoffCapMs: 60000 });
  function Status() {
    return h("p", null, useRealtime().label);
  }
  app(client, fakeRest({}), h(Status));
  await screen.findByText("Connecting…");
  const ws = await connected(client);
  await screen.findByText("Connected");
  act(() => {
    ws.drop(1006);
  });
  await waitFor(() => assert.match(screen.getByRole("paragraph").textContent, /^Offline · retrying in \d+ s$/));
  act(() => client.close());
});
