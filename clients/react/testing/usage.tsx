// Compiled (never run) by test/types.test.js: the shipped .d.ts files describe the API.
import { createElement as h } from "react";
import {
  type ChatMessageFrame,
  type ClientFrame,
  type RealtimeClient,
  RealtimeProvider,
  type ServerFrame,
  useConversation,
  useNotifications,
  useRealtime,
  useTask,
} from "../src/index.js";

declare const client: RealtimeClient;

function Chat() {
  const { label, online, send } = useRealtime();
  const conversation = useConversation({ with: 2 });
  const room = useConversation({ room: 5 });
  const { unreadCount, markAllRead } = useNotifications();
  const task = useTask(7);
  send({ type: "subscribe", channel: "project:3" });
  conversation.send("hi", { attachment_ids: [1] });
  const ticks: (string | null)[] = conversation.messages.map((m) => m.status);
  const status: "open" | "in_progress" | "review" | "done" | "cancelled" | null = task.status;
  void markAllRead();
  return h("p", null, label, String(online), room.unread, unreadCount, ticks.join(), status);
}

export const app = h(RealtimeProvider, { client }, h(Chat));

export function kind(frame: ServerFrame): string {
  switch (frame.type) {
    case "chat_message":
      return frame.content;
    case "message_updated":
      return frame.edited_at;
    case "conversation_read":
      return String(frame.last_read_message_id);
    case "error":
      return frame.code;
    default:
      return frame.type;
  }
}

export const message: ChatMessageFrame = {
  type: "chat_message",
  seq: 1,
  message_id: 2,
  sender_id: 3,
  room_id: 4,
  content: "x",
  timestamp: "2026-12-06T00:00:00Z",
  client_msg_id: null,
  mentions: [5],
};

export const out: ClientFrame = { type: "read_receipt", message_id: 2 };
