// Types of @quantumworks/realtime-react. The frame types are generated from
// docs/asyncapi.yaml (frames.d.ts); this file describes the hooks.
import type { ReactNode } from "react";
import type { Attachment, ClientFrame, ServerFrame, TaskStatus } from "./frames.js";

export type * from "./frames.js";

/** What the hooks need of QWRealtime (/static/qw-realtime.js) or QWSharedRealtime (/static/qw-shared.js). */
export interface RealtimeClient {
  readonly state: "connecting" | "open" | "closed";
  readonly userId: number | null;
  readonly retryAt?: number | null;
  readonly isLeader?: boolean;
  token?: string;
  on(type: string, fn: (event: ServerFrame | ClientEvent) => void): () => void;
  send<F extends ClientFrame>(frame: F): F & { client_msg_id?: string };
  pending(): Array<Extract<ClientFrame, { type: "chat_message" }> & { client_msg_id: string }>;
}

/** Events the client adds to the frames (qw-realtime.js `on`). */
export type ClientEvent =
  | { type: "state"; state: "connecting" | "open" | "closed" }
  | { type: "retry"; at: number }
  | { type: "tokens"; access: string; refresh: string }
  | { type: "outbox"; pending: ClientFrame[] }
  | { type: "send_failed"; frame: ClientFrame; error: { code: string; message?: string } }
  | { type: "auth_error"; code: number; reason: string }
  | { type: "session_end"; reason?: string };

// The parsed JSON body of the answer (null for 204); a non-2xx answer rejects.
export type FetchJson = (path: string, init?: RequestInit) => Promise<unknown>;

export interface RealtimeProviderProps {
  client: RealtimeClient;
  fetchJson?: FetchJson | null;
  children?: ReactNode;
}
export function RealtimeProvider(props: RealtimeProviderProps): ReactNode;

export type ConnectionStatus = "online" | "connecting" | "waiting" | "signed_out" | "closed";

export interface RealtimeState {
  status: ConnectionStatus;
  online: boolean;
  /** When the next connection attempt starts (ms since the epoch), while waiting. */
  retryAt: number | null;
  /** Seconds until then, ticking. */
  retryIn: number | null;
  /** Chat messages typed but not acknowledged yet. */
  pending: number;
  authError: string | null;
  /** "Connected", "Offline · retrying in 4 s · 2 messages waiting", … */
  label: string;
  userId: number | null;
  send: RealtimeClient["send"];
  client: RealtimeClient;
}
export function useRealtime(): RealtimeState;

export type MessageStatus = "sending" | "sent" | "delivered" | "read" | "failed";

export interface ConversationMessage {
  /** null while the message is only in the outbox. */
  message_id: number | null;
  client_msg_id: string | null;
  sender_id: number | null;
  receiver_id: number | null;
  room_id: number | null;
  content: string;
  timestamp: string | null;
  edited_at: string | null;
  attachments: Attachment[];
  mentions: number[];
  delivered: boolean;
  read: boolean;
  mine: boolean;
  /** Your own messages' ticks; null for others' messages. */
  status: MessageStatus | null;
  /** The server's error code, with status "failed". */
  error?: string;
}

export type ConversationTarget = { with: number; room?: undefined } | { room: number; with?: undefined };

export interface ConversationState {
  key: string;
  messages: ConversationMessage[];
  loading: boolean;
  error: string | null;
  hasMore: boolean;
  /** The newest message of the others you have read (on any device). */
  readUpTo: number;
  unread: number;
  /** Users typing now. */
  typing: number[];
  send(content: string, extra?: { attachment_ids?: number[] }): ClientFrame;
  markRead(): void;
  loadOlder(): Promise<void>;
  setTyping(isTyping?: boolean): void;
}
export function useConversation(target: ConversationTarget): ConversationState;

export interface NotificationItem {
  id: number;
  notification_type: string;
  title: string;
  message: string;
  link: string;
  created_at: string;
  read_at: string | null;
}

export interface NotificationsState {
  items: NotificationItem[];
  unreadCount: number;
  loading: boolean;
  error: string | null;
  markRead(id: number): Promise<void>;
  markAllRead(): Promise<void>;
}
export function useNotifications(): NotificationsState;

export interface TaskState {
  id: number;
  /** The task as `GET /api/tasks/{id}/` returned it. */
  task: {
    id: number;
    project: number;
    title: string;
    status: TaskStatus;
    updated_at: string;
    [field: string]: unknown;
  } | null;
  status: TaskStatus | null;
  previousStatus?: TaskStatus | null;
  updatedBy?: number | null;
  updatedAt?: string | null;
  loading: boolean;
  error: string | null;
}
export function useTask(id: number): TaskState;

export function describeConnection(
  state: { status: ConnectionStatus; pending: number },
  retryIn: number | null,
): string;
export function conversationKey(target: ConversationTarget): string;
export class RealtimeStore {
  constructor(client: RealtimeClient, options?: { fetchJson?: FetchJson | null });
  readonly client: RealtimeClient;
  dispose(): void;
}
export function storeFor(client: RealtimeClient, options?: { fetchJson?: FetchJson | null }): RealtimeStore;
export function useRealtimeStore(): RealtimeStore;
