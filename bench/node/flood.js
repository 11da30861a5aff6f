// The flood scenario's two clients, on bare `ws` like load-client.js (Engine.IO v4 /
// Socket.IO v5 by hand: open, CONNECT with auth, ping/pong, acked events).
//
//   node flood.js '<json config>'
//
// Roles (config.role):
//   victims  connect config.clients sockets; each sends an acked subscribe or unsubscribe
//            (alternating, its own public channel) every config.intervalMs, open loop, and
//            times the ack. Stdin lines "phase <label>" file later requests under <label>;
//            "done" waits for outstanding acks and prints per-phase figures.
//   flooder  connect one socket, print ready, and on the stdin line "go" send config.count
//            acked events named config.event as fast as the socket takes them; stop when the
//            server closes the connection, has answered every event, or config.timeoutMs
//            passes. Prints what was sent, acked and refused, and when it was closed.
// Both print {"event":"ready", ...} once connected; the last stdout line is
// {"event":"summary", ...}. config.debug puts every message received on stderr.
"use strict";

const readline = require("readline");
const WebSocket = require("ws");

const config = JSON.parse(process.argv[2] || "{}");
const now = () => performance.now();
const HIGH_WATER = 256 * 1024; // bytes queued in the socket before the flooder yields
const ACK_GRACE_MS = 5000; // how long "done" waits for outstanding victim acks
const SLOW_MS = config.slowMs || 50; // a victim's ack later than this counts as slow

function emit(line) {
  process.stdout.write(JSON.stringify(line) + "\n");
}

function percentiles(samples) {
  if (samples.length === 0) return { count: 0, p50: null, p99: null, max: null };
  const sorted = Float64Array.from(samples).sort();
  const at = (p) => sorted[Math.min(sorted.length - 1, Math.ceil((p / 100) * sorted.length) - 1)];
  return { count: sorted.length, p50: at(50), p99: at(99), max: sorted[sorted.length - 1] };
}

// An ACK packet "43<id>[payload]": its id and, for an error ack, its code.
function parseAck(text) {
  const bracket = text.indexOf("[", 2);
  const id = parseInt(text.slice(2, bracket < 0 ? undefined : bracket), 10);
  const code = text.startsWith('{"ok":true', bracket + 1) ? "ok"
    : (text.slice(bracket).match(/"code":"([^"]*)"/) || [null, "other"])[1];
  return { id, code };
}

// One Socket.IO connection: resolves once the server accepted CONNECT, with hooks for
// acks and events; rejects on a refused or failed connect.
function connect(token, handlers) {
  return new Promise((resolve, reject) => {
    const url = config.url.replace(/^http/, "ws") + "/socket.io/?EIO=4&transport=websocket";
    const ws = new WebSocket(url, { perMessageDeflate: config.deflate !== false, handshakeTimeout: 30000 });
    let ready = false;
    const timer = setTimeout(() => fail("connect timeout"), config.connectTimeoutMs || 30000);
    function fail(reason) {
      clearTimeout(timer);
      if (!ready) reject(new Error(reason));
      ws.terminate();
    }
    ws.on("message", (raw) => {
      const text = raw.toString();
      if (config.debug) process.stderr.write("< " + text.slice(0, 200) + "\n");
      const type = text.charCodeAt(0);
      if (type === 0x32 /* 2 ping */) ws.send("3");
      else if (type === 0x30 /* 0 open */) ws.send(token ? "40" + JSON.stringify({ token }) : "40");
      else if (type === 0x34 /* 4 message */) {
        const packet = text.charCodeAt(1);
        if (packet === 0x33 /* 3 ACK */) handlers.ack(parseAck(text), now());
        else if (packet === 0x32 /* 2 EVENT */) handlers.event(text, now());
        else if (packet === 0x30 /* 0 CONNECT */ && !ready) {
          ready = true;
          clearTimeout(timer);
          resolve(ws);
        } else if (packet === 0x34 /* 4 CONNECT_ERROR */) fail("connect_error: " + text.slice(2, 120));
      }
    });
    ws.on("error", (err) => fail("ws: " + (err.code || err.message)));
    ws.on("close", (code) => {
      if (ready) handlers.close(now(), code);
      else fail("closed before CONNECT");
    });
  });
}

function stdinLines(onLine) {
  readline.createInterface({ input: process.stdin }).on("line", (line) => onLine(line.trim()));
}

// -- victims ----------------------------------------------------------------------------

async function victims() {
  const phases = new Map(); // label -> {samples, errors, unanswered}
  let phase = "warmup";
  const phaseOf = (label) => {
    if (!phases.has(label)) phases.set(label, { samples: [], errors: {}, sent: 0, slow: 0 });
    return phases.get(label);
  };
  const pending = new Map(); // "<victim>:<id>" -> {sentAt, label}
  let disconnects = 0;
  const sockets = [];
  const failures = [];
  await Promise.all(Array.from({ length: config.clients }, async (_, index) => {
    const handlers = {
      ack: ({ id, code }, at) => {
        const key = index + ":" + id;
        const request = pending.get(key);
        if (!request) return;
        pending.delete(key);
        const record = phaseOf(request.label);
        record.samples.push(at - request.sentAt);
        if (at - request.sentAt > SLOW_MS) record.slow += 1;
        if (code !== "ok") record.errors[code] = (record.errors[code] || 0) + 1;
      },
      event: () => {},
      close: () => { disconnects += 1; },
    };
    try {
      sockets[index] = await connect(config.token, handlers);
    } catch (err) {
      failures.push(String(err.message));
    }
  }));
  emit({ event: "ready", connected: sockets.filter(Boolean).length, failed: failures.length,
    errors: failures.slice(0, 3) });
  const interval = config.intervalMs || 100;
  const timers = sockets.map((ws, index) => {
    if (!ws) return null;
    let id = 0;
    const channel = JSON.stringify({ channel: `public:flood-victim-${index}` });
    const tick = () => {
      if (ws.readyState !== WebSocket.OPEN) return;
      id += 1;
      const name = id % 2 ? "subscribe" : "unsubscribe";
      pending.set(index + ":" + id, { sentAt: now(), label: phase });
      phaseOf(phase).sent += 1;
      ws.send(`42${id}["${name}",${channel}]`);
    };
    // Staggered, so the victims' requests spread evenly over each interval.
    let repeat = null;
    const first = setTimeout(() => { tick(); repeat = setInterval(tick, interval); },
      (index * interval) / sockets.length);
    return () => { clearTimeout(first); clearInterval(repeat); };
  });
  await new Promise((resolve) => stdinLines((line) => {
    if (line.startsWith("phase ")) phase = line.slice(6).trim();
    else if (line === "done") resolve();
  }));
  for (const stop of timers) if (stop) stop();
  const deadline = now() + ACK_GRACE_MS;
  while (pending.size > 0 && now() < deadline) await new Promise((r) => setTimeout(r, 20));
  for (const request of pending.values()) phaseOf(request.label).unanswered = (phaseOf(request.label).unanswered || 0) + 1;
  const summary = { event: "summary", connected: sockets.filter(Boolean).length, disconnects, phases: {} };
  for (const [label, record] of phases) {
    summary.phases[label] = { sent: record.sent, unanswered: record.unanswered || 0, slow: record.slow,
      errors: record.errors, latency: percentiles(record.samples) };
  }
  emit(summary);
  for (const ws of sockets) if (ws) ws.terminate();
}

// -- flooder ----------------------------------------------------------------------------

async function flooder() {
  const count = config.count || 20000;
  const result = { sent: 0, acked: 0, codes: {}, closing: null, closed_ms: null,
    last_ack_ms: null, flood_ms: null, send_ms: null, reason: null, close_code: null };
  let started = null;
  let finish = null;
  const finished = new Promise((resolve) => { finish = resolve; });
  const end = (reason) => {
    if (result.reason === null) {
      result.reason = reason;
      result.flood_ms = now() - started;
      finish();
    }
  };
  const ws = await connect(config.token, {
    ack: ({ code }, at) => {
      result.acked += 1;
      result.codes[code] = (result.codes[code] || 0) + 1;
      if (started !== null) result.last_ack_ms = at - started;
      if (result.acked >= count) end("all acked");
    },
    event: (text, at) => {
      if (text.startsWith('42["connection.closing"')) {
        const code = (text.match(/"code":"([^"]*)"/) || [null, "?"])[1];
        result.closing = { code, ms: started === null ? null : at - started };
      }
    },
    // 1006: no closing frame came (ws reports a reset socket so, not as an error).
    close: (at, code) => {
      result.close_code = code;
      if (started !== null) result.closed_ms = at - started;
      end("closed");
    },
  });
  emit({ event: "ready", connected: 1 });
  await new Promise((resolve) => stdinLines((line) => { if (line === "go") resolve(); }));
  const payload = JSON.stringify(config.payload === undefined ? {} : config.payload);
  const timeout = setTimeout(() => end("timeout"), config.timeoutMs || 60000);
  started = now();
  while (result.sent < count && result.reason === null && ws.readyState === WebSocket.OPEN) {
    if (ws.bufferedAmount > HIGH_WATER) {
      await new Promise((r) => setImmediate(r)); // let the socket drain and acks come in
      continue;
    }
    result.sent += 1;
    ws.send(`42${result.sent}["${config.event}",${payload}]`);
    if (result.sent % 500 === 0) await new Promise((r) => setImmediate(r));
  }
  result.send_ms = now() - started;
  await finished;
  clearTimeout(timeout);
  ws.terminate();
  emit({ event: "summary", count, ...result });
}

const roles = { victims, flooder };

(roles[config.role] || (() => Promise.reject(new Error(`unknown role ${config.role}`))))()
  .then(() => process.exit(0))
  .catch((err) => {
    emit({ event: "summary", fatal: String(err && err.stack ? err.stack : err) });
    process.exit(1);
  });
