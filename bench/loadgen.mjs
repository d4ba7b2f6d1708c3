// The load generator of `make bench` (bench/run.py starts it pinned to its own core).
//
//   taskset -c 0 node bench/loadgen.mjs CONFIG.json
//
// CONFIG (written by bench/run.py): { workload: "w1"|"w2"|"w3", url, http, server_pid,
// clk_tck, users: [{id, token}], ...workload parameters }. Progress goes to stderr;
// the result is one JSON object on the last line of stdout.
//
// It speaks SPEC §5 like a native client (no Origin, token in the query string,
// no compression) and measures the server from outside: /proc/<pid>/stat
// (utime+stime of all its threads) and VmRSS, sampled at phase boundaries. It
// reports its own CPU and its schedule lag (how late each scheduled send or
// connect fired) so a reader can see it kept up.

import { readdirSync, readFileSync } from "node:fs";
import { performance } from "node:perf_hooks";
import WebSocket from "ws";

const config = JSON.parse(readFileSync(process.argv[2], "utf8"));
const now = () => performance.now(); // ms, monotonic
const log = (...parts) => process.stderr.write(`[loadgen ${config.workload}] ${parts.join(" ")}\n`);

// --- the server, seen from /proc ---------------------------------------------
function serverCpuSeconds() {
  const text = readFileSync(`/proc/${config.server_pid}/stat`, "utf8");
  const fields = text.slice(text.lastIndexOf(")") + 2).split(" ");
  return (Number(fields[11]) + Number(fields[12])) / config.clk_tck;
}

function serverRssBytes() {
  const match = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${config.server_pid}/status`, "utf8"));
  return Number(match[1]) * 1024;
}

// PostgreSQL and Redis (config.services: [{comm, cmdline}]): the idle workload
// counts what the server makes them do. A process counts when its name is
// `comm` and its command line contains `cmdline`: PostgreSQL backends show
// their database there, so other databases' backends are left out; Redis is
// one process for everyone, so its figure is only clean on a quiet machine.
function servicesCpuSeconds(byComm = null) {
  const services = config.services || [];
  if (!services.length) return 0;
  let total = 0;
  for (const name of readdirSync("/proc")) {
    if (!/^\d+$/.test(name)) continue;
    try {
      const text = readFileSync(`/proc/${name}/stat`, "utf8");
      const comm = text.slice(text.indexOf("(") + 1, text.lastIndexOf(")"));
      const wanted = services.filter((service) => service.comm === comm);
      if (!wanted.length) continue;
      const cmdline = readFileSync(`/proc/${name}/cmdline`, "utf8");
      if (!wanted.some((service) => cmdline.includes(service.cmdline))) continue;
      const fields = text.slice(text.lastIndexOf(")") + 2).split(" ");
      const seconds = (Number(fields[11]) + Number(fields[12])) / config.clk_tck;
      total += seconds;
      if (byComm) byComm[comm] = (byComm[comm] || 0) + seconds;
    } catch {
      // the process ended between the listing and the read
    }
  }
  return total;
}

function sample() {
  const byComm = {};
  return {
    at: now(),
    server_cpu: serverCpuSeconds(),
    services_cpu: servicesCpuSeconds(byComm),
    services_by_comm: byComm,
    rss: serverRssBytes(),
    self: process.cpuUsage(),
  };
}

function usage(from, to) {
  const wall = (to.at - from.at) / 1000;
  const self = (to.self.user - from.self.user + to.self.system - from.self.system) / 1e6;
  return {
    wall_s: round(wall, 3),
    server_cpu_s: round(to.server_cpu - from.server_cpu, 3),
    server_cpu_pct: round((100 * (to.server_cpu - from.server_cpu)) / wall, 1),
    services_cpu_s: round(to.services_cpu - from.services_cpu, 3),
    // Each service apart: PostgreSQL is the bench database's own backends,
    // Redis is shared by everything on the machine.
    services_by_comm_s: Object.fromEntries(
      Object.entries(to.services_by_comm || {}).map(([comm, seconds]) => [
        comm,
        round(seconds - ((from.services_by_comm || {})[comm] || 0), 3),
      ]),
    ),
    loadgen_cpu_s: round(self, 3),
    loadgen_cpu_pct: round((100 * self) / wall, 1),
  };
}

// --- statistics ------------------------------------------------------------------
function round(value, digits = 2) {
  if (value === null || value === undefined || Number.isNaN(value)) return null;
  const scale = 10 ** digits;
  return Math.round(value * scale) / scale;
}

function pct(values, p) {
  if (!values.length) return null;
  const sorted = Float64Array.from(values).sort();
  const index = Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1));
  return sorted[index];
}

function summary(values) {
  return {
    n: values.length,
    p50: round(pct(values, 50)),
    p95: round(pct(values, 95)),
    p99: round(pct(values, 99)),
    max: round(values.length ? values.reduce((a, b) => Math.max(a, b)) : null),
  };
}

const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

async function waitFor(predicate, timeoutMs) {
  const deadline = now() + timeoutMs;
  while (!predicate()) {
    if (now() > deadline) return false;
    await sleep(5);
  }
  return true;
}

// Fire fn(i) for i in [0, count) at `rate` per second from now on. The lag of
// each firing (actual − scheduled, ms) is what shows a load generator that fell behind.
function schedule(count, rate, fn) {
  const lags = [];
  const start = now();
  let next = 0;
  return new Promise((resolve) => {
    const tick = () => {
      const t = now();
      while (next < count) {
        const due = start + (next * 1000) / rate;
        if (due > t) break;
        lags.push(t - due);
        fn(next);
        next += 1;
      }
      if (next >= count) {
        resolve(lags);
        return;
      }
      setTimeout(tick, Math.max(0, start + (next * 1000) / rate - now()));
    };
    tick();
  });
}

// --- one authenticated socket -----------------------------------------------------
class Client {
  constructor(user, { onFrame } = {}) {
    this.user = user;
    this.onFrame = onFrame;
    this.state = "connecting";
    this.failure = null; // cause when it never authenticated
    this.connectMs = null;
    this.closeCode = null;
  }

  open(timeoutMs = 30000) {
    this.startedAt = now();
    return new Promise((resolve) => {
      const settle = (failure) => {
        if (this.state !== "connecting") return;
        clearTimeout(this.timer);
        if (failure) {
          this.state = "failed";
          this.failure = failure;
          this.ws.terminate();
        } else {
          this.state = "open";
          this.connectMs = now() - this.startedAt;
        }
        resolve(this);
      };
      const url = `${config.url}?token=${this.user.token}`;
      this.ws = new WebSocket(url, { perMessageDeflate: false, handshakeTimeout: timeoutMs });
      this.timer = setTimeout(() => settle("timeout"), timeoutMs);
      this.ws.on("unexpected-response", (_req, res) => settle(`http_${res.statusCode}`));
      this.ws.on("error", (error) => settle(error.code || error.message || "error"));
      this.ws.on("close", (code) => {
        this.closeCode = code;
        if (this.state === "open") this.state = "closed";
        settle(`close_${code}`);
      });
      this.ws.on("message", (data) => {
        const frame = JSON.parse(data.toString());
        if (this.state === "connecting") {
          if (frame.type === "authenticated") settle(null);
          else settle(`frame_${frame.type}`);
          return;
        }
        if (this.onFrame) this.onFrame(this, frame);
      });
    });
  }

  send(frame) {
    this.ws.send(JSON.stringify(frame));
  }
}

async function openAll(users, rate, options = {}) {
  const clients = users.map((user) => new Client(user, options));
  const pending = [];
  const lags = await schedule(clients.length, rate, (i) => pending.push(clients[i].open()));
  await Promise.all(pending);
  return { clients, lags };
}

function failuresByCause(clients) {
  const causes = {};
  for (const client of clients) {
    if (client.failure) causes[client.failure] = (causes[client.failure] || 0) + 1;
  }
  return causes;
}

async function closeAll(clients) {
  for (const client of clients) {
    if (client.state === "open") client.ws.close(1000);
  }
  await waitFor(() => clients.every((c) => c.ws.readyState === WebSocket.CLOSED), 30000);
}

// --- W1: N idle authenticated sockets opened at R/s ------------------------------
async function w1() {
  const before = sample();
  const { clients, lags } = await openAll(config.users, config.rate, {});
  // The server finishes a connect after `authenticated` (presence): let it land.
  await sleep(1000);
  const opened = sample();
  const ok = clients.filter((c) => c.state === "open");
  log(`${ok.length}/${clients.length} authenticated; idle ${config.hold_seconds}s`);
  await sleep(config.hold_seconds * 1000);
  const held = sample();
  const stillOpen = clients.filter((c) => c.state === "open").length;
  await closeAll(clients);
  const connect = usage(before, opened);
  return {
    sockets: clients.length,
    rate: config.rate,
    ok: ok.length,
    failed: clients.length - ok.length,
    failures: failuresByCause(clients),
    still_open_after_hold: stillOpen,
    connect_ms: summary(ok.map((c) => c.connectMs)),
    server_cpu_ms_per_connect: ok.length ? round((1000 * connect.server_cpu_s) / ok.length, 3) : null,
    server_rss_before_mib: round(before.rss / 2 ** 20, 1),
    server_rss_after_mib: round(opened.rss / 2 ** 20, 1),
    server_rss_kib_per_socket: ok.length ? round((opened.rss - before.rss) / 1024 / ok.length, 2) : null,
    connect_phase: connect,
    idle_phase: { ...usage(opened, held), sockets: stillOpen },
    schedule_lag_ms: summary(lags),
  };
}

// --- W2: P pairs, r msgs/s for T s ------------------------------------------------
async function w2() {
  const users = config.users;
  const pairs = Math.floor(users.length / 2);
  const total = Math.round(config.rate * config.seconds);
  const sentAt = new Float64Array(total + config.warmup);
  const ackMs = [];
  const e2eMs = [];
  const received = new Uint8Array(total + config.warmup);
  let duplicates = 0;
  let duplicateAcks = 0;
  let deliveredCount = 0;
  let lastDelivery = 0;
  const errors = {};
  const runId = config.run_id;
  const indexOf = (cmid) => Number(cmid.slice(runId.length + 1));

  const onFrame = (client, frame) => {
    const t = now();
    if (frame.type === "chat_message") {
      if (frame.sender_id === client.user.id) return; // our own copy (multi-device)
      const cmid = frame.client_msg_id;
      if (!cmid || !cmid.startsWith(runId)) return;
      const i = indexOf(cmid);
      if (received[i]) {
        duplicates += 1;
        return;
      }
      received[i] = 1;
      if (i >= config.warmup) {
        e2eMs.push(t - sentAt[i]);
        deliveredCount += 1;
        lastDelivery = t;
      }
    } else if (frame.type === "message_sent") {
      if (frame.duplicate) duplicateAcks += 1;
      const i = indexOf(frame.client_msg_id);
      if (i >= config.warmup) ackMs.push(t - sentAt[i]);
    } else if (frame.type === "error") {
      errors[frame.code] = (errors[frame.code] || 0) + 1;
    }
  };

  const { clients } = await openAll(users, config.connect_rate, { onFrame });
  const failed = clients.filter((c) => c.state !== "open").length;
  if (failed) throw new Error(`${failed} sockets failed to open: ${JSON.stringify(failuresByCause(clients))}`);
  const byId = new Map(clients.map((c) => [c.user.id, c]));
  const send = (i) => {
    const pair = i % pairs;
    const forward = Math.floor(i / pairs) % 2 === 0;
    const a = users[2 * pair];
    const b = users[2 * pair + 1];
    const [from, to] = forward ? [a, b] : [b, a];
    sentAt[i] = now();
    byId.get(from.id).send({
      type: "chat_message",
      receiver_id: to.id,
      content: `bench ${runId} message ${i}: the quick brown fox jumps over the lazy dog`,
      client_msg_id: `${runId}-${i}`,
    });
  };
  // Warm-up (not counted): the first sends open database connections.
  for (let i = 0; i < config.warmup; i += 1) {
    send(i);
    await sleep(10);
  }
  await waitFor(() => received.subarray(0, config.warmup).every((x) => x), 10000);
  await sleep(500);

  const before = sample();
  const firstSend = now();
  const lags = await schedule(total, config.rate, (i) => send(i + config.warmup));
  const sendEnd = now();
  await waitFor(() => deliveredCount >= total, config.drain_seconds * 1000);
  const after = sample();
  const lost = total - deliveredCount;
  const elapsed = ((lost ? sendEnd : lastDelivery) - firstSend) / 1000;
  await closeAll(clients);
  const run = usage(before, after);
  return {
    pairs,
    rate: config.rate,
    seconds: config.seconds,
    sent: total,
    delivered: deliveredCount,
    delivered_per_s: round(deliveredCount / elapsed, 1),
    lost,
    duplicates,
    duplicate_acks: duplicateAcks,
    acked: ackMs.length,
    errors,
    e2e_ms: summary(e2eMs),
    ack_ms: { p50: round(pct(ackMs, 50)), p99: round(pct(ackMs, 99)), max: round(ackMs.length ? ackMs.reduce((a, b) => Math.max(a, b)) : null) },
    server_cpu_us_per_msg: deliveredCount ? round((1e6 * run.server_cpu_s) / deliveredCount, 0) : null,
    phase: run,
    schedule_lag_ms: summary(lags),
  };
}

// --- W3: M subscribers of one task, K status changes over REST ---------------------
async function w3() {
  const taskId = config.task_id;
  const updates = []; // updates[k][socket index] = arrival time
  const counts = new Map();
  const onFrame = (client, frame) => {
    if (frame.type === "subscribed") client.subscribed = true;
    if (frame.type !== "task_status_update" || frame.task_id !== taskId || "seq" in frame) return;
    const k = counts.get(client) || 0;
    counts.set(client, k + 1);
    if (updates[k]) updates[k].push(now());
  };
  const { clients } = await openAll(config.users, config.connect_rate, { onFrame });
  const failed = clients.filter((c) => c.state !== "open").length;
  if (failed) throw new Error(`${failed} sockets failed to open: ${JSON.stringify(failuresByCause(clients))}`);
  for (const client of clients) client.send({ type: "subscribe", channel: `task:${taskId}` });
  if (!(await waitFor(() => clients.every((c) => c.subscribed), 30000))) {
    throw new Error("not every socket got `subscribed`");
  }
  await sleep(500);
  const allReceived = [];
  const each = [];
  const patchMs = [];
  let incomplete = 0;
  const before = sample();
  for (let k = 0; k < config.statuses.length; k += 1) {
    updates[k] = [];
    const start = now();
    const response = await fetch(`${config.http}/api/tasks/${taskId}/status/`, {
      method: "PATCH",
      headers: { "content-type": "application/json", authorization: `Bearer ${config.author_token}` },
      body: JSON.stringify({ status: config.statuses[k] }),
    });
    patchMs.push(now() - start);
    if (response.status !== 200) throw new Error(`PATCH ${k} → ${response.status} ${await response.text()}`);
    await response.arrayBuffer();
    const complete = await waitFor(() => updates[k].length >= clients.length, 10000);
    if (!complete) incomplete += 1;
    for (const t of updates[k]) each.push(t - start);
    if (complete) allReceived.push(Math.max(...updates[k]) - start);
    await sleep(config.pause_ms);
  }
  const after = sample();
  await closeAll(clients);
  const run = usage(before, after);
  return {
    subscribers: clients.length,
    changes: config.statuses.length,
    incomplete,
    all_received_ms: summary(allReceived),
    each_received_ms: summary(each),
    patch_ms: summary(patchMs),
    server_cpu_ms_per_change: round((1000 * run.server_cpu_s) / config.statuses.length, 2),
    phase: run,
  };
}

// --- idle: N sockets open and quiet for T s (SPEC heartbeats only) -------------------
// CPU per idle socket per second of the server and of the PostgreSQL and Redis
// processes it drives: the heartbeat's whole cost. T spans at least two heartbeats.
//
// The server's CPU with no socket at all (its timers and pollers, uvicorn's own
// loops) is measured first over `baseline_seconds`: divided by N it would
// inflate the per-socket figure, so both are printed — the gross one (all CPU
// over the hold / N) and the marginal one ((CPU at N − CPU at 0) / N). The
// hold starts `settle_seconds` after the last `authenticated` (the connect's
// tail: presence, subscribes, the GC of its garbage) and is sampled every
// `window_seconds`, so a reader sees whether a tail or a GC pass is in it.
async function idle() {
  const baselineSeconds = config.baseline_seconds ?? 10;
  const settleSeconds = config.settle_seconds ?? 2;
  const windowSeconds = config.window_seconds ?? 5;
  // A server just started is still finishing its start-up (imports, first
  // connections): 19 ms/s of CPU one second after ready, 1 ms/s five seconds later.
  await sleep(settleSeconds * 1000 + 3000);
  const zeroFrom = sample();
  await sleep(baselineSeconds * 1000);
  const zero = usage(zeroFrom, sample());
  const { clients } = await openAll(config.users, config.rate, {});
  const ok = clients.filter((c) => c.state === "open");
  await sleep(settleSeconds * 1000);
  const before = sample();
  log(`${ok.length}/${clients.length} authenticated; idle ${config.hold_seconds}s`);
  const windows = [];
  let last = before;
  const end = before.at + config.hold_seconds * 1000;
  while (now() < end) {
    await sleep(Math.min(windowSeconds * 1000, end - now()));
    const next = sample();
    const part = usage(last, next);
    windows.push({
      t_s: round((next.at - before.at) / 1000, 1),
      server_us_per_socket_s: ok.length ? round((1e6 * part.server_cpu_s) / ok.length / part.wall_s, 2) : null,
      services_us_per_socket_s: ok.length ? round((1e6 * part.services_cpu_s) / ok.length / part.wall_s, 2) : null,
    });
    last = next;
  }
  const after = last;
  const stillOpen = clients.filter((c) => c.state === "open").length;
  await closeAll(clients);
  const run = usage(before, after);
  const perSocketSecond = (seconds) =>
    stillOpen ? round((1e6 * seconds) / stillOpen / run.wall_s, 2) : null;
  // CPU per second with no socket, taken off before dividing by N.
  const zeroServer = zero.server_cpu_s / zero.wall_s;
  const zeroServices = zero.services_cpu_s / zero.wall_s;
  const marginal = (seconds, base) => perSocketSecond(seconds - base * run.wall_s);
  return {
    sockets: clients.length,
    ok: ok.length,
    still_open: stillOpen,
    hold_s: run.wall_s,
    server_us_per_socket_s: perSocketSecond(run.server_cpu_s),
    services_us_per_socket_s: perSocketSecond(run.services_cpu_s),
    total_us_per_socket_s: perSocketSecond(run.server_cpu_s + run.services_cpu_s),
    zero_sockets: {
      wall_s: zero.wall_s,
      server_ms_per_s: round(1000 * zeroServer, 3),
      services_ms_per_s: round(1000 * zeroServices, 3),
    },
    marginal_server_us_per_socket_s: marginal(run.server_cpu_s, zeroServer),
    marginal_services_us_per_socket_s: marginal(run.services_cpu_s, zeroServices),
    marginal_total_us_per_socket_s: marginal(
      run.server_cpu_s + run.services_cpu_s,
      zeroServer + zeroServices,
    ),
    windows,
    phase: run,
  };
}

const workloads = { w1, w2, w3, idle };
const started = process.cpuUsage();
const result = await workloads[config.workload]();
const self = process.cpuUsage(started);
result.loadgen_cpu_total_s = round((self.user + self.system) / 1e6, 2);
process.stdout.write(`${JSON.stringify(result)}\n`);
process.exit(0);
