// REST throughput: `concurrency` keep-alive connections issuing one request after another
// for `durationMs`.
//
//   node rest-load.js '{"url": ..., "method": "POST", "headers": {...}, "body": {...},
//                       "concurrency": 32, "durationMs": 5000}'
//
// Prints one JSON line: requests, ok, rps, statuses, latency p50/p99/max (ms).
"use strict";

const http = require("http");

const config = JSON.parse(process.argv[2] || "{}");
const now = () => performance.now();

async function main() {
  const url = new URL(config.url);
  const method = config.method || "GET";
  const body = config.body === undefined ? null : JSON.stringify(config.body);
  const agent = new http.Agent({ keepAlive: true, maxSockets: config.concurrency || 32 });
  const headers = { ...(config.headers || {}) };
  if (body !== null) {
    headers["content-type"] = "application/json";
    headers["content-length"] = Buffer.byteLength(body);
  }
  const latencies = [];
  const statuses = {};
  let ok = 0;
  const started = now();
  const deadline = started + (config.durationMs || 5000);
  const once = () => new Promise((resolve) => {
    const t0 = now();
    const req = http.request({ agent, host: url.hostname, port: url.port, path: url.pathname + url.search,
      method, headers }, (res) => {
      res.resume();
      res.on("end", () => {
        latencies.push(now() - t0);
        statuses[res.statusCode] = (statuses[res.statusCode] || 0) + 1;
        if (res.statusCode >= 200 && res.statusCode < 300) ok += 1;
        resolve();
      });
    });
    req.on("error", (err) => {
      statuses[err.code || "error"] = (statuses[err.code || "error"] || 0) + 1;
      resolve();
    });
    req.end(body === null ? undefined : body);
  });
  await Promise.all(Array.from({ length: config.concurrency || 32 }, async () => {
    while (now() < deadline) await once();
  }));
  const elapsed = (now() - started) / 1000;
  latencies.sort((a, b) => a - b);
  const pick = (p) => (latencies.length ? latencies[Math.min(latencies.length - 1, Math.ceil((p / 100) * latencies.length) - 1)] : null);
  agent.destroy();
  process.stdout.write(JSON.stringify({
    requests: latencies.length, ok, rps: ok / elapsed, statuses,
    latency: { p50: pick(50), p99: pick(99), max: latencies.length ? latencies[latencies.length - 1] : null },
  }) + "\n");
}

main().catch((err) => {
  process.stdout.write(JSON.stringify({ fatal: String(err) }) + "\n");
  process.exit(1);
});
