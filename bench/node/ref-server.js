// The reference server the bench compares Hub with: socket.io 4.8 + the Redis adapter.
//
//   node ref-server.js --port P --redis URL [--deflate]
//
// A "subscribe" event {channel} joins a room and acks {ok: true}; POST /publish
// {channel, type, data} emits the type to that room with Hub's envelope shape.
// GET /readyz answers 200 once the adapter's Redis clients are connected.
"use strict";

const http = require("http");
const { Server } = require("socket.io");
const { createAdapter } = require("@socket.io/redis-adapter");
const { createClient } = require("redis");

function option(name, fallback) {
  const at = process.argv.indexOf(name);
  return at >= 0 ? process.argv[at + 1] : fallback;
}

const port = Number(option("--port", "0"));
const redisUrl = option("--redis", "redis://127.0.0.1:6379/0");
const deflate = process.argv.includes("--deflate");
const offsets = new Map();
let ready = false;

function readBody(req) {
  return new Promise((resolve, reject) => {
    const chunks = [];
    req.on("data", (chunk) => chunks.push(chunk));
    req.on("end", () => resolve(Buffer.concat(chunks).toString()));
    req.on("error", reject);
  });
}

function reply(res, status, body) {
  const text = JSON.stringify(body);
  res.writeHead(status, { "content-type": "application/json", "content-length": Buffer.byteLength(text) });
  res.end(text);
}

const httpServer = http.createServer(async (req, res) => {
  if (req.method === "GET" && req.url === "/readyz") {
    return reply(res, ready ? 200 : 503, { ready });
  }
  if (req.method === "POST" && req.url === "/publish") {
    let message;
    try {
      message = JSON.parse(await readBody(req));
    } catch (err) {
      return reply(res, 400, { error: String(err) });
    }
    const offset = (offsets.get(message.channel) || 0) + 1;
    offsets.set(message.channel, offset);
    const envelope = {
      channel: message.channel, offset, epoch: "ref", type: message.type,
      data: message.data, ts: new Date().toISOString(), trace_id: "",
    };
    io.to("ch:" + message.channel).emit(message.type, envelope);
    return reply(res, 202, { channel: message.channel, offset, epoch: "ref" });
  }
  reply(res, 404, { error: "not found" });
});
httpServer.keepAliveTimeout = 60000;

const io = new Server(httpServer, {
  transports: ["websocket"],
  perMessageDeflate: deflate ? { threshold: 0 } : false,
  maxHttpBufferSize: 64 * 1024,
});

io.on("connection", (socket) => {
  socket.on("subscribe", (payload, ack) => {
    const channel = payload && payload.channel;
    if (typeof channel !== "string") {
      if (typeof ack === "function") ack({ ok: false, error: { code: "invalid" } });
      return;
    }
    socket.join("ch:" + channel);
    if (typeof ack === "function") ack({ ok: true, channel, offset: offsets.get(channel) || 0, epoch: "ref" });
  });
});

async function main() {
  const pubClient = createClient({ url: redisUrl });
  const subClient = pubClient.duplicate();
  await Promise.all([pubClient.connect(), subClient.connect()]);
  io.adapter(createAdapter(pubClient, subClient, { key: "bench-ref" }));
  ready = true;
  httpServer.listen(port, "127.0.0.1", () => {
    process.stdout.write(JSON.stringify({ event: "listening", port: httpServer.address().port }) + "\n");
  });
}

process.on("SIGTERM", () => process.exit(0));
main().catch((err) => {
  console.error(err);
  process.exit(1);
});
