// Generated from docs/asyncapi.yaml by scripts/gen-types.mjs (`npm run types`); do not edit.
// The frames of the QuantumWorks Realtime socket protocol (SPEC §5, §10, §11).

/**
 * This interface was referenced by `QWFrames`'s JSON-Schema
 * via the `definition` "Id".
 */
export type Id = number
/**
 * The user's inbox sequence number, gap-free per user (SPEC §4.2).
 * 
 * This interface was referenced by `QWFrames`'s JSON-Schema
 * via the `definition` "Seq".
 */
export type Seq = number
/**
 * ISO 8601, UTC.
 * 
 * This interface was referenced by `QWFrames`'s JSON-Schema
 * via the `definition` "Timestamp".
 */
export type Timestamp = string
/**
 * The sender's idempotency key (SPEC §4.5).
 * 
 * This interface was referenced by `QWFrames`'s JSON-Schema
 * via the `definition` "ClientMsgId".
 */
export type ClientMsgId = string
/**
 * `task:{id}`, `project:{id}` or `room:{id}`.
 * 
 * This interface was referenced by `QWFrames`'s JSON-Schema
 * via the `definition` "ChannelName".
 */
export type ChannelName = string
/**
 * This interface was referenced by `QWFrames`'s JSON-Schema
 * via the `definition` "TaskStatus".
 */
export type TaskStatus = ("open" | "in_progress" | "review" | "done" | "cancelled")
/**
 * This interface was referenced by `QWFrames`'s JSON-Schema
 * via the `definition` "ErrorCode".
 */
export type ErrorCode = ("invalid_json" | "invalid_message" | "unknown_type" | "not_found" | "forbidden" | "too_large" | "rate_limited" | "server_error")

/**
 * This interface was referenced by `QWFrames`'s JSON-Schema
 * via the `definition` "Attachment".
 */
export interface Attachment {
id: Id
name: string
size: number
content_type: string
/**
 * A signed link valid QW_ATTACHMENT_URL_SECONDS.
 */
url: string
}
/**
 * First frame after a good token (and the answer to `authenticate`).
 * 
 * This interface was referenced by `QWFrames`'s JSON-Schema
 * via the `definition` "AuthenticatedFrame".
 */
export interface AuthenticatedFrame {
type: "authenticated"
user_id: Id
/**
 * The user's current seq.
 */
last_seq: number
/**
 * Seconds between `heartbeat`s.
 */
heartbeat_interval: number
timestamp: Timestamp
}
/**
 * A message of a 1:1 conversation (`receiver_id`) or a room (`room_id`), to both sides and every device.
 * 
 * This interface was referenced by `QWFrames`'s JSON-Schema
 * via the `definition` "ChatMessageFrame".
 */
export interface ChatMessageFrame {
type: "chat_message"
seq: Seq
message_id: Id
sender_id: Id
receiver_id?: Id
room_id?: Id
content: string
timestamp: Timestamp
client_msg_id: (ClientMsgId | null)
/**
 * SPEC §11; every message payload carries it once attachments exist.
 * 
 * @maxItems 10
 */
attachments?: Attachment[]
/**
 * SPEC §11; members a room message mentions with `@username`.
 */
mentions?: Id[]
}
/**
 * To the sender, when the receiver's client got (`delivered`) or read (`read`) a message.
 * 
 * This interface was referenced by `QWFrames`'s JSON-Schema
 * via the `definition` "MessageStatusFrame".
 */
export interface MessageStatusFrame {
type: "message_status"
seq: Seq
message_id: Id
status: ("delivered" | "read")
by: Id
timestamp: Timestamp
}
/**
 * SPEC §11; to every participant and device.
 * 
 * This interface was referenced by `QWFrames`'s JSON-Schema
 * via the `definition` "MessageUpdatedFrame".
 */
export interface MessageUpdatedFrame {
type: "message_updated"
seq: Seq
message_id: Id
content: string
edited_at: Timestamp
/**
 * As on `chat_message`, the members the new text mentions (SPEC §11).
 */
mentions?: Id[]
}
/**
 * Deleted by its sender or staff, or hidden by moderation; it leaves history.
 * 
 * This interface was referenced by `QWFrames`'s JSON-Schema
 * via the `definition` "MessageDeletedFrame".
 */
export interface MessageDeletedFrame {
type: "message_deleted"
seq: Seq
message_id: Id
}
/**
 * SPEC §11; the user read a conversation on one device, so every other device clears it.
 * 
 * This interface was referenced by `QWFrames`'s JSON-Schema
 * via the `definition` "ConversationReadFrame".
 */
export interface ConversationReadFrame {
type: "conversation_read"
seq: Seq
/**
 * The counterpart of a 1:1 conversation.
 */
with?: number
/**
 * The room.
 */
room?: number
last_read_message_id: Id
}
/**
 * A stored notification, pushed live.
 * 
 * This interface was referenced by `QWFrames`'s JSON-Schema
 * via the `definition` "NotificationFrame".
 */
export interface NotificationFrame {
type: "notification"
seq: Seq
notification_id: Id
/**
 * `task_status`, `announcement`, `mention` (SPEC §11), …
 */
notification_type: string
title: string
message: string
link: string
created_at: Timestamp
}
/**
 * Reading on one device clears the badge on the others.
 * 
 * This interface was referenced by `QWFrames`'s JSON-Schema
 * via the `definition` "NotificationReadFrame".
 */
export interface NotificationReadFrame {
type: "notification_read"
seq: Seq
notification_ids?: Id[]
all?: true
timestamp: Timestamp
}
/**
 * Durable per user (with `seq`); the copy to `task:`/`project:` subscribers has no `seq`.
 * 
 * This interface was referenced by `QWFrames`'s JSON-Schema
 * via the `definition` "TaskStatusUpdateFrame".
 */
export interface TaskStatusUpdateFrame {
type: "task_status_update"
seq?: Seq
task_id: Id
project_id: Id
status: TaskStatus
previous_status: TaskStatus
/**
 * Who changed it; null for a change without a user (admin script, migration).
 */
updated_by: (Id | null)
timestamp: Timestamp
}
/**
 * Relayed `typing` of the counterpart (`receiver_id` is you) or of a room member.
 * 
 * This interface was referenced by `QWFrames`'s JSON-Schema
 * via the `definition` "TypingIndicatorFrame".
 */
export interface TypingIndicatorFrame {
type: "typing_indicator"
sender_id: Id
receiver_id?: Id
room_id?: Id
is_typing: boolean
}
/**
 * A contact came online or went offline.
 * 
 * This interface was referenced by `QWFrames`'s JSON-Schema
 * via the `definition` "PresenceFrame".
 */
export interface PresenceFrame {
type: "presence"
user_id: Id
online: boolean
}
/**
 * Ack to the sending connection; `duplicate` when the client_msg_id was seen before.
 * 
 * This interface was referenced by `QWFrames`'s JSON-Schema
 * via the `definition` "MessageSentFrame".
 */
export interface MessageSentFrame {
type: "message_sent"
message_id: Id
client_msg_id: (ClientMsgId | null)
timestamp: Timestamp
duplicate: boolean
}
/**
 * Subscribed
 * 
 * This interface was referenced by `QWFrames`'s JSON-Schema
 * via the `definition` "SubscribedFrame".
 */
export interface SubscribedFrame {
type: "subscribed"
channel: ChannelName
}
/**
 * The answer to `unsubscribe`, or the server ending a subscription (e.g. removed from a room).
 * 
 * This interface was referenced by `QWFrames`'s JSON-Schema
 * via the `definition` "UnsubscribedFrame".
 */
export interface UnsubscribedFrame {
type: "unsubscribed"
/**
 * The channel as the client sent it: unsubscribe is idempotent, so a channel that was never
 * subscribed (or could not be, e.g. `task:²`) is answered as unsubscribed too.
 * 
 */
channel: string
}
/**
 * The end of a replay; live events follow.
 * 
 * This interface was referenced by `QWFrames`'s JSON-Schema
 * via the `definition` "ResumedFrame".
 */
export interface ResumedFrame {
type: "resumed"
last_seq: number
count: number
}
/**
 * The resume point is past retention; refetch over REST.
 * 
 * This interface was referenced by `QWFrames`'s JSON-Schema
 * via the `definition` "ResyncRequiredFrame".
 */
export interface ResyncRequiredFrame {
type: "resync_required"
}
/**
 * Every `heartbeat_interval` seconds.
 * 
 * This interface was referenced by `QWFrames`'s JSON-Schema
 * via the `definition` "HeartbeatFrame".
 */
export interface HeartbeatFrame {
type: "heartbeat"
timestamp: Timestamp
}
/**
 * Pong
 * 
 * This interface was referenced by `QWFrames`'s JSON-Schema
 * via the `definition` "PongFrame".
 */
export interface PongFrame {
type: "pong"
timestamp: Timestamp
}
/**
 * A frame the server refused; the connection stays open. Never echoes internal exception text.
 * 
 * This interface was referenced by `QWFrames`'s JSON-Schema
 * via the `definition` "ErrorFrame".
 */
export interface ErrorFrame {
type: "error"
code: ErrorCode
message: string
/**
 * The offending frame's `client_msg_id`, if any.
 */
ref?: (string | null)
/**
 * Seconds to wait, with `rate_limited`.
 */
retry_after?: number
/**
 * With `server_error`, the id of the one logged traceback.
 */
incident_id?: string
}
/**
 * Answered with `pong`.
 * 
 * This interface was referenced by `QWFrames`'s JSON-Schema
 * via the `definition` "PingFrame".
 */
export interface PingFrame {
type: "ping"
}
/**
 * Answered with `pong`.
 * 
 * This interface was referenced by `QWFrames`'s JSON-Schema
 * via the `definition` "ClientHeartbeatFrame".
 */
export interface ClientHeartbeatFrame {
type: "heartbeat"
}
/**
 * Replays every durable event after `last_seq`, then `resumed` (or `resync_required`).
 * 
 * This interface was referenced by `QWFrames`'s JSON-Schema
 * via the `definition` "ResumeFrame".
 */
export interface ResumeFrame {
type: "resume"
last_seq: number
}
/**
 * Swaps in a fresh access token of the same user; pushes back the expiry close (4002).
 * 
 * This interface was referenced by `QWFrames`'s JSON-Schema
 * via the `definition` "AuthenticateFrame".
 */
export interface AuthenticateFrame {
type: "authenticate"
token: string
}
/**
 * Persisted, delivered to both sides, acknowledged with `message_sent` (or `error` with `ref`).
 * 
 * This interface was referenced by `QWFrames`'s JSON-Schema
 * via the `definition` "SendChatMessageFrame".
 */
export interface SendChatMessageFrame {
type: "chat_message"
receiver_id?: Id
room_id?: Id
/**
 * 1–10,000 characters after trimming, at most 10 KiB of UTF-8 (SPEC §6).
 */
content: string
client_msg_id?: ClientMsgId
/**
 * SPEC §11; the sender's own uploads not yet attached.
 * 
 * @maxItems 10
 */
attachment_ids?: Id[]
}
/**
 * Relayed as `typing_indicator`; at most 5 per second per connection.
 * 
 * This interface was referenced by `QWFrames`'s JSON-Schema
 * via the `definition` "TypingFrame".
 */
export interface TypingFrame {
type: "typing"
receiver_id?: Id
room_id?: Id
is_typing?: boolean
}
/**
 * Sets `delivered_at`; the sender gets `message_status` `delivered`.
 * 
 * This interface was referenced by `QWFrames`'s JSON-Schema
 * via the `definition` "MessageReceivedFrame".
 */
export interface MessageReceivedFrame {
type: "message_received"
message_id: Id
}
/**
 * Marks the message and every earlier one of its conversation read; the sender gets `message_status` `read`.
 * 
 * This interface was referenced by `QWFrames`'s JSON-Schema
 * via the `definition` "ReadReceiptFrame".
 */
export interface ReadReceiptFrame {
type: "read_receipt"
message_id: Id
}
/**
 * Join a channel if allowed (`subscribed`), else `error not_found`.
 * 
 * This interface was referenced by `QWFrames`'s JSON-Schema
 * via the `definition` "SubscribeFrame".
 */
export interface SubscribeFrame {
type: "subscribe"
channel: ChannelName
}
/**
 * Unsubscribe
 * 
 * This interface was referenced by `QWFrames`'s JSON-Schema
 * via the `definition` "UnsubscribeFrame".
 */
export interface UnsubscribeFrame {
type: "unsubscribe"
channel: ChannelName
}

/** Every frame the server sends. */
export type ServerFrame =
  | AuthenticatedFrame
  | ChatMessageFrame
  | MessageStatusFrame
  | MessageUpdatedFrame
  | MessageDeletedFrame
  | ConversationReadFrame
  | NotificationFrame
  | NotificationReadFrame
  | TaskStatusUpdateFrame
  | TypingIndicatorFrame
  | PresenceFrame
  | MessageSentFrame
  | SubscribedFrame
  | UnsubscribedFrame
  | ResumedFrame
  | ResyncRequiredFrame
  | HeartbeatFrame
  | PongFrame
  | ErrorFrame;

/** Every frame a client may send. */
export type ClientFrame =
  | PingFrame
  | ClientHeartbeatFrame
  | ResumeFrame
  | AuthenticateFrame
  | SendChatMessageFrame
  | TypingFrame
  | MessageReceivedFrame
  | ReadReceiptFrame
  | SubscribeFrame
  | UnsubscribeFrame;
