// The bench's load client: one process holding N Socket.IO connections on bare `ws`.
//
//   node load-client.js '<json config>'
//
// It speaks Engine.IO v4 / Socket.IO v5 by hand (open, CONNECT with auth, ping/pong,
// acked subscribe, events), offers permessage-deflate like a browser unless told not
// to, and records for every delivered publication the latency from the send timestamp
// the publisher put in its data ("bt", ms since the epoch, same host clock).
//
// Modes (config.mode):
//   hold     connect, print {"event":"ready"}, then wait for a line "done" on stdin
//            (someone else publishes) and for the expected deliveries
//   publish  connect, then POST config.publish.count publications itself (as fast as
//            possible with `concurrency` in flight, or open-loop at `rate` per second)
//   tasks    connect, POST config.tasks.count tasks at once and time each one's
//            `task.succeeded` on the personal channel
// The last stdout line is {"event":"summary", ...}.
"use strict";

const http = require("http");
const readline = require("readline");
const WebSocket = require("ws");

const config = JSON.parse(process.argv[2] || "{}");
const now = () => performance.timeOrigin + performance.now();
const HIST_RES = 10; // buckets per ms
const HIST_MAX_MS = 60000;

function emit(line) {
  process.stdout.write(JSON.stringify(line) + "\n");
}

// -- latency histogram -------------------------------------------------------------

class Histogram {
  constructor() {
    this.buckets = new Uint32Array(HIST_MAX_MS * HIST_RES + 1);
    this.count = 0;
    this.max = 0;
    this.sum = 0;
  }
  add(ms) {
    const value = ms < 0 ? 0 : ms;
    this.buckets[Math.min(Math.round(value * HIST_RES), this.buckets.length - 1)] += 1;
    this.count += 1;
    this.sum += value;
    if (value > this.max) this.max = value;
  }
  percentile(p) {
    if (this.count === 0) return null;
    const rank = Math.ceil((p / 100) * this.count);
    let seen = 0;
    for (let i = 0; i < this.buckets.length; i += 1) {
      seen += this.buckets[i];
      if (seen >= rank) return i / HIST_RES;
    }
    return this.max;
  }
  summary() {
    return {
      count: this.count,
      p50: this.percentile(50),
      p99: this.percentile(99),
      max: this.count ? this.max : null,
      mean: this.count ? this.sum / this.count : null,
    };
  }
}

// -- state --------------------------------------------------------------------------

const clients = Math.max(0, config.clients | 0);
const eventName = config.event || "bench.msg";
const eventPrefix = '42["' + eventName + '",';
const latency = new Histogram();
const stats = {
  connected: 0, failed: 0, subscribed: 0, deflate: 0, errors: {}, delivered: 0,
  disconnects: 0, firstDelivery: null, lastDelivery: null, connectMs: null,
};
let perPublication = null; // Uint32Array of deliveries per seq, sized once known
const sockets = [];
const taskEvents = [];

function noteError(key) {
  stats.errors[key] = (stats.errors[key] || 0) + 1;
}

function numberAfter(text, key) {
  const at = text.indexOf(key);
  if (at < 0) return null;
  return parseFloat(text.slice(at + key.length, at + key.length + 24));
}

function onEvent(text, receivedAt) {
  if (text.startsWith(eventPrefix)) {
    const sentAt = numberAfter(text, '"bt":');
    const seq = numberAfter(text, '"bseq":');
    stats.delivered += 1;
    if (stats.firstDelivery === null) stats.firstDelivery = receivedAt;
    stats.lastDelivery = receivedAt;
    if (sentAt !== null) latency.add(receivedAt - sentAt);
    if (perPublication !== null && seq !== null && seq >= 0 && seq < perPublication.length) {
      perPublication[seq] += 1;
    }
  } else if (config.mode === "tasks" && text.startsWith('42["task.succeeded",')) {
    taskEvents.push({ text, receivedAt });
  }
}

// -- one connection -----------------------------------------------------------------

function connectOne(index) {
  return new Promise((resolve) => {
    const url = config.url.replace(/^http/, "ws") + "/socket.io/?EIO=4&transport=websocket";
    const ws = new WebSocket(url, { perMessageDeflate: config.deflate !== false, handshakeTimeout: 60000 });
    let settled = false;
    let open = false;
    const settle = (ok, reason) => {
      if (settled) return;
      settled = true;
      open = ok;
      clearTimeout(timer);
      if (ok) stats.connected += 1;
      else {
        stats.failed += 1;
        noteError(reason);
        ws.terminate();
      }
      resolve(ok);
    };
    const timer = setTimeout(() => settle(false, "timeout"), config.connectTimeoutMs || 60000);
    ws.on("upgrade", (res) => {
      if (res.headers["sec-websocket-extensions"]) stats.deflate += 1;
    });
    ws.on("message", (raw) => {
      const text = raw.toString();
      const type = text.charCodeAt(0);
      if (type === 0x32 /* 2 ping */) {
        ws.send("3");
      } else if (type === 0x34 /* 4 message */) {
        const packet = text.charCodeAt(1);
        if (packet === 0x32 /* 2 EVENT */) onEvent(text, now());
        else if (packet === 0x30 /* 0 CONNECT */) {
          if (config.channel) {
            ws.send('420["subscribe",' + JSON.stringify({ channel: config.channel }) + "]");
          } else settle(true);
        } else if (packet === 0x33 /* 3 ACK */) {
          if (text.startsWith('430[{"ok":true')) {
            stats.subscribed += 1;
            settle(true);
          } else settle(false, "subscribe: " + text.slice(0, 120));
        } else if (packet === 0x34 /* 4 CONNECT_ERROR */) {
          settle(false, "connect_error: " + text.slice(2, 120));
        }
      } else if (type === 0x30 /* 0 open */) {
        const token = Array.isArray(config.tokens) ? config.tokens[index % config.tokens.length] : config.token;
        ws.send(token ? "40" + JSON.stringify({ token }) : "40");
      }
    });
    ws.on("error", (err) => settle(false, "ws: " + (err.code || err.message)));
    ws.on("close", () => {
      if (open) stats.disconnects += 1;
      settle(false, "closed before ready");
    });
    sockets.push(ws);
  });
}

async function connectAll() {
  const started = now();
  let next = 0;
  const lanes = Math.min(config.connectConcurrency || 100, clients) || 0;
  await Promise.all(Array.from({ length: lanes }, async () => {
    while (next < clients) {
      const index = next;
      next += 1;
      await connectOne(index);
    }
  }));
  stats.connectMs = now() - started;
}

// -- HTTP ---------------------------------------------------------------------------

function post(agent, target, headers, body) {
  return new Promise((resolve) => {
    const url = new URL(target);
    const req = http.request({
      agent, host: url.hostname, port: url.port, path: url.pathname, method: "POST",
      headers: { "content-type": "application/json", "content-length": Buffer.byteLength(body), ...headers },
    }, (res) => {
      const chunks = [];
      res.on("data", (chunk) => chunks.push(chunk));
      res.on("end", () => resolve({ status: res.statusCode, body: Buffer.concat(chunks).toString() }));
    });
    req.on("error", (err) => resolve({ status: 0, body: String(err.code || err.message) }));
    req.end(body);
  });
}

async function publishAll(spec) {
  const agent = new http.Agent({ keepAlive: true, maxSockets: spec.concurrency || 8 });
  const result = { sent: 0, ok: 0, failed: 0, statuses: {}, started: now(), finished: null };
  const sendOne = async (seq, scheduledAt) => {
    const body = JSON.stringify({
      channel: spec.channel, type: eventName, data: { bseq: seq, bt: scheduledAt, pad: spec.pad || "" },
    });
    result.sent += 1;
    const res = await post(agent, spec.url, spec.headers || {}, body);
    result.statuses[res.status] = (result.statuses[res.status] || 0) + 1;
    if (res.status >= 200 && res.status < 300) result.ok += 1;
    else {
      result.failed += 1;
      if (result.failed <= 3) noteError("publish " + res.status + ": " + res.body.slice(0, 160));
    }
  };
  if (spec.rate > 0) {
    // Open loop: publication i is due at start + i/rate and carries that time, so a
    // server that falls behind is charged for the queueing too.
    const pending = [];
    const start = now();
    for (let seq = 0; seq < spec.count; seq += 1) {
      const due = start + (seq * 1000) / spec.rate;
      const wait = due - now();
      if (wait > 1) await new Promise((r) => setTimeout(r, wait));
      pending.push(sendOne(seq, due));
    }
    await Promise.all(pending);
  } else {
    let next = 0;
    await Promise.all(Array.from({ length: spec.concurrency || 8 }, async () => {
      while (next < spec.count) {
        const seq = next;
        next += 1;
        await sendOne(seq, now());
      }
    }));
  }
  result.finished = now();
  agent.destroy();
  return result;
}

async function runTasks(spec) {
  const agent = new http.Agent({ keepAlive: true, maxSockets: spec.count });
  const sent = new Map();
  const failures = [];
  const accepted = new Histogram(); // POST to its 202
  await Promise.all(Array.from({ length: spec.count }, async () => {
    const sentAt = now();
    const res = await post(agent, spec.url, spec.headers || {}, JSON.stringify(spec.body));
    accepted.add(now() - sentAt);
    if (res.status !== 202) {
      failures.push(res.status);
      if (failures.length <= 3) noteError("task " + res.status + ": " + res.body.slice(0, 160));
      return;
    }
    sent.set(JSON.parse(res.body).id, sentAt);
  }));
  const deadline = now() + (spec.timeoutMs || 60000);
  while (taskEvents.length < sent.size && now() < deadline) await new Promise((r) => setTimeout(r, 20));
  agent.destroy();
  const overhead = new Histogram();
  const total = new Histogram();
  const waited = new Histogram(); // created_at to started_at: the broker queue and the pool
  const delivered = new Histogram(); // finished_at to the event at this client
  for (const { text, receivedAt } of taskEvents) {
    const record = JSON.parse(text.slice(2))[1].data;
    const sentAt = sent.get(record.id);
    if (sentAt === undefined) continue;
    const runtime = Date.parse(record.finished_at) - Date.parse(record.started_at);
    total.add(receivedAt - sentAt);
    overhead.add(receivedAt - sentAt - (Number.isFinite(runtime) ? runtime : 0));
    waited.add(Date.parse(record.started_at) - Date.parse(record.created_at));
    delivered.add(receivedAt - Date.parse(record.finished_at));
  }
  return { posted: sent.size, post_failed: failures.length, succeeded: overhead.count,
    overhead: overhead.summary(), total: total.summary(), accepted: accepted.summary(),
    waited: waited.summary(), delivered: delivered.summary() };
}

// -- waiting for deliveries -----------------------------------------------------------

async function awaitDeliveries(expected) {
  const idleMs = config.idleMs || 3000;
  const deadline = now() + (config.timeoutMs || 120000);
  let lastCount = -1;
  let lastChange = now();
  while (stats.delivered < expected && now() < deadline) {
    await new Promise((r) => setTimeout(r, 20));
    if (stats.delivered !== lastCount) {
      lastCount = stats.delivered;
      lastChange = now();
    } else if (now() - lastChange > idleMs) break;
  }
}

function waitForStdin(word) {
  return new Promise((resolve) => {
    const rl = readline.createInterface({ input: process.stdin });
    rl.on("line", (line) => {
      if (line.trim().startsWith(word)) {
        resolve(line.trim().slice(word.length).trim());
        rl.close();
      }
    });
    rl.on("close", () => resolve(""));
  });
}

async function main() {
  await connectAll();
  const memory = process.memoryUsage();
  emit({ event: "ready", connected: stats.connected, failed: stats.failed, connect_ms: stats.connectMs,
    deflate_negotiated: stats.deflate, errors: stats.errors, client_rss: memory.rss });
  const summary = { event: "summary", clients, connected: stats.connected, failed: stats.failed,
    connect_ms: stats.connectMs, deflate_negotiated: stats.deflate };
  const mode = config.mode || "hold";
  if (mode === "publish") {
    const spec = config.publish;
    perPublication = new Uint32Array(spec.count);
    const publishing = await publishAll(spec);
    const expected = spec.count * stats.subscribed;
    await awaitDeliveries(expected);
    Object.assign(summary, deliverySummary(expected, publishing.started, publishing));
  } else if (mode === "tasks") {
    summary.tasks = await runTasks(config.tasks);
  } else {
    const first = await waitForStdin("go");
    const count = Number(first) || 0;
    perPublication = count ? new Uint32Array(count) : null;
    const started = now();
    await waitForStdin("done");
    const expected = count * stats.subscribed;
    if (expected) await awaitDeliveries(expected);
    Object.assign(summary, deliverySummary(expected, started, null));
  }
  summary.errors = stats.errors;
  summary.disconnects = stats.disconnects;
  emit(summary);
  for (const ws of sockets) ws.terminate();
  process.exit(0);
}

function deliverySummary(expected, started, publishing) {
  let incomplete = 0;
  if (perPublication !== null) {
    for (const n of perPublication) if (n < stats.subscribed) incomplete += 1;
  }
  const span = stats.lastDelivery !== null ? (stats.lastDelivery - started) / 1000 : null;
  return {
    expected, delivered: stats.delivered, lost: Math.max(0, expected - stats.delivered),
    incomplete_publications: incomplete,
    deliveries_per_s: span ? stats.delivered / span : 0,
    publish: publishing && { ok: publishing.ok, failed: publishing.failed, statuses: publishing.statuses,
      publish_s: (publishing.finished - publishing.started) / 1000 },
    latency: latency.summary(),
  };
}

main().catch((err) => {
  emit({ event: "summary", fatal: String(err && err.stack ? err.stack : err) });
  process.exit(1);
});
