// A small chat on @quantumworks/realtime-react: sign in, pick a conversation, talk;
// the header shows the connection and the unread notifications, the side a live task.
import {
  RealtimeProvider,
  useConversation,
  useNotifications,
  useRealtime,
  useTask,
} from "@quantumworks/realtime-react";
import { useEffect, useRef, useState } from "react";

// The vanilla client, served by the backend (through the dev proxy): the bindings run on it.
const CLIENT_URL = "/static/qw-shared.js";

async function api(path, { token, ...init } = {}) {
  const response = await fetch(path, {
    ...init,
    headers: { "Content-Type": "application/json", ...(token ? { Authorization: `Bearer ${token}` } : {}) },
  });
  if (!response.ok) throw new Error(`${path}: HTTP ${response.status}`);
  return response.status === 204 ? null : response.json();
}

export function App() {
  const [session, setSession] = useState(null);
  if (!session) return <SignIn onSession={setSession} />;
  return (
    <RealtimeProvider client={session.client}>
      <Shell
        me={session.me}
        token={session.token}
        onSignOut={() => {
          session.client.endSession?.("signed_out");
          setSession(null);
        }}
      />
    </RealtimeProvider>
  );
}

function SignIn({ onSession }) {
  const [username, setUsername] = useState("alice");
  const [password, setPassword] = useState("alice-demo-2026");
  const [error, setError] = useState(null);
  async function submit(event) {
    event.preventDefault();
    try {
      const tokens = await api("/api/auth/token/", { method: "POST", body: JSON.stringify({ username, password }) });
      const me = await api("/api/me/", { token: tokens.access });
      const { QWSharedRealtime } = await import(/* @vite-ignore */ CLIENT_URL);
      // One client for the page, made once, outside render; the provider shares it.
      const client = new QWSharedRealtime({ token: tokens.access, refreshToken: tokens.refresh });
      onSession({ client, me, token: tokens.access });
    } catch (e) {
      setError(String(e.message ?? e));
    }
  }
  return (
    <form className="signin" onSubmit={submit}>
      <h1>QuantumWorks · React</h1>
      <label>
        Username <input value={username} onChange={(e) => setUsername(e.target.value)} />
      </label>
      <label>
        Password <input type="password" value={password} onChange={(e) => setPassword(e.target.value)} />
      </label>
      <button type="submit">Sign in</button>
      {error && <p className="error">{error}</p>}
      <p className="hint">Demo users of `make run`: alice, bob, carol (password: name-demo-2026).</p>
    </form>
  );
}

function Shell({ me, token, onSignOut }) {
  const { label, status } = useRealtime();
  const { unreadCount, items, markAllRead } = useNotifications();
  const [conversations, setConversations] = useState([]);
  const [tasks, setTasks] = useState([]);
  const [open, setOpen] = useState(null);
  useEffect(() => {
    api("/api/chat/conversations/", { token }).then((body) => {
      const list = Array.isArray(body) ? body : body.results;
      setConversations(list);
      setOpen((current) => current ?? (list[0] ? targetOf(list[0]) : null));
    });
    api("/api/tasks/", { token }).then((body) => setTasks((Array.isArray(body) ? body : body.results).slice(0, 3)));
  }, [token]);
  return (
    <div className="shell">
      <header>
        <strong>QuantumWorks</strong>
        <span className={`pill ${status}`}>{label}</span>
        <span className="bell" title={items[0]?.title ?? ""}>
          Notifications <b className={unreadCount ? "badge" : "badge zero"}>{unreadCount}</b>
          {unreadCount > 0 && (
            <button type="button" onClick={markAllRead}>
              mark read
            </button>
          )}
        </span>
        <span className="me">
          {me.username}{" "}
          <button type="button" onClick={onSignOut}>
            Sign out
          </button>
        </span>
      </header>
      <nav>
        <h2>Conversations</h2>
        {conversations.map((c) => {
          const target = targetOf(c);
          const name = c.room ? `# ${c.room.name}` : c.user.username;
          const active = open && open.with === target.with && open.room === target.room;
          return (
            <button type="button" key={name} className={active ? "active" : ""} onClick={() => setOpen(target)}>
              {name}
            </button>
          );
        })}
        <h2>Tasks</h2>
        {tasks.map((t) => (
          <TaskCard key={t.id} id={t.id} />
        ))}
      </nav>
      <main>{open ? <Chat key={JSON.stringify(open)} target={open} me={me} /> : <p>No conversation yet.</p>}</main>
    </div>
  );
}

function targetOf(conversation) {
  return conversation.room ? { room: conversation.room.id } : { with: conversation.user.id };
}

const TICKS = { sending: "🕓", sent: "✓", delivered: "✓✓", read: "✓✓ read", failed: "⚠ not sent" };

function Chat({ target }) {
  const chat = useConversation(target);
  const [text, setText] = useState("");
  const end = useRef(null);
  const { markRead } = chat;
  const newest = chat.messages.at(-1)?.message_id ?? chat.messages.length;
  useEffect(() => {
    if (!newest) return;
    end.current?.scrollIntoView({ block: "end" });
    if (document.visibilityState === "visible") markRead();
  }, [newest, markRead]);
  return (
    <section className="chat">
      {chat.hasMore && (
        <button type="button" onClick={chat.loadOlder}>
          older messages
        </button>
      )}
      {chat.loading && <p>Loading…</p>}
      <ol>
        {chat.messages.map((m) => (
          <li key={m.message_id ?? m.client_msg_id} className={m.mine ? "mine" : "theirs"}>
            <span className="content">{m.content}</span>
            {m.edited_at && <span className="edited"> (edited)</span>}
            {m.mine && <span className={`tick ${m.status}`}>{TICKS[m.status]}</span>}
          </li>
        ))}
      </ol>
      <div ref={end} />
      {chat.typing.length > 0 && <p className="typing">typing…</p>}
      <form
        onSubmit={(event) => {
          event.preventDefault();
          if (!text.trim()) return;
          chat.send(text);
          chat.setTyping(false);
          setText("");
        }}
      >
        <input
          aria-label="Message"
          value={text}
          placeholder="Write a message"
          onChange={(e) => {
            setText(e.target.value);
            chat.setTyping(e.target.value.length > 0);
          }}
        />
        <button type="submit">Send</button>
      </form>
    </section>
  );
}

function TaskCard({ id }) {
  const { task, status } = useTask(id);
  return (
    <div className="task">
      <span>{task?.title ?? `Task ${id}`}</span>
      <span className={`status ${status}`}>{status?.replace("_", " ") ?? "…"}</span>
    </div>
  );
}
