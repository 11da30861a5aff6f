"""The scenarios: each drives one started server and records its figures.

A scenario is a function (ctx, server) -> None that calls ctx.record(...) for every
figure. Scenarios that need Hub's own parts (its worker emitter, its Celery tasks)
skip the other servers.
"""

import json
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bench.client import ClientError, HeldClients, run_client, run_rest_load
from bench.report import Results
from bench.servers import (
    CHANNEL,
    PYTHON,
    ROOT,
    BenchEnv,
    HubServer,
    HubWorker,
    Server,
    stop_process,
)
from run import worker_options

P99_TARGET_MS = 100.0
P99_GIVE_UP_MS = 1000.0
SETTLE_SECONDS = 3.0  # the ladder goes on past the target, up to a saturated rate


@dataclass
class Sizes:
    clients: int = 1000
    fanout_pubs: int = 1000
    rates: list[int] = field(default_factory=lambda: [10, 25, 50, 100, 200, 400])
    rate_seconds: float = 4.0
    capacity: list[int] = field(default_factory=lambda: [1000, 5000, 10000])
    tasks: int = 100
    rest_seconds: float = 4.0
    rest_concurrency: int = 16
    publish_concurrency: int = 8
    # Worker setups for the task round trip, by the first word of their label.
    worker_setups: list[str] = field(default_factory=lambda: ["prefork", "threads", "gevent"])
    flood_events: int = 20000
    flood_victims: int = 20
    # Seconds of idle victims, and the least a flood phase lasts (so both have alike counts).
    flood_seconds: float = 3.0


@dataclass
class Context:
    env: BenchEnv
    sizes: Sizes
    results: Results
    client_deflate: bool = True
    connect_concurrency: int = 100

    def record(self, scenario: str, server: Server | str, metric: str,
               value: float | None) -> None:
        """`server` is a server under test or the name of a baseline without one."""
        if value is not None:
            name = server if isinstance(server, str) else server.name
            self.results.add(scenario, name, metric, float(value))

    def client_config(self, server: Server, clients: int, channel: str | None = CHANNEL,
                      user: str = "bench") -> dict[str, Any]:
        return {
            "url": server.url, "clients": clients, "token": server.token(user),
            "channel": channel, "deflate": self.client_deflate,
            "connectConcurrency": self.connect_concurrency, "connectTimeoutMs": 60000,
            "idleMs": 5000, "timeoutMs": 300000,
        }


def check_connected(summary: dict[str, Any], wanted: int) -> None:
    if summary.get("connected", 0) < wanted:
        raise ClientError(f"{summary.get('connected', 0)}/{wanted} connected; "
                          f"errors: {json.dumps(summary.get('errors'))[:400]}")


def record_delivery(ctx: Context, scenario: str, server: Server, summary: dict[str, Any]) -> None:
    ctx.record(scenario, server, "deliveries/s", summary.get("deliveries_per_s"))
    ctx.record(scenario, server, "lost deliveries", summary.get("lost"))
    latency = summary.get("latency") or {}
    ctx.record(scenario, server, "p50 ms", latency.get("p50"))
    ctx.record(scenario, server, "p99 ms", latency.get("p99"))
    publish = summary.get("publish") or {}
    if publish.get("failed"):
        ctx.record(scenario, server, "publish errors", publish["failed"])


# -- scenarios -------------------------------------------------------------------------


def fanout(ctx: Context, server: Server) -> None:
    """N clients on one channel; M publications through the server's publish endpoint as
    fast as `publish_concurrency` requests in flight allow (for Hub: the full REST path)."""
    sizes = ctx.sizes
    config = ctx.client_config(server, sizes.clients)
    config["mode"] = "publish"
    config["publish"] = {"url": server.publish_url, "headers": server.publish_headers(),
                         "channel": CHANNEL, "count": sizes.fanout_pubs, "rate": 0,
                         "concurrency": sizes.publish_concurrency}
    summary = run_client(config)
    check_connected(summary, sizes.clients)
    record_delivery(ctx, "fanout", server, summary)
    if summary.get("deflate_negotiated"):
        ctx.record("fanout", server, "deflate conns", summary["deflate_negotiated"])


def latency(ctx: Context, server: Server) -> None:
    """Open-loop publications at fixed rates to N clients. The ladder climbs until p99 is
    over a second or deliveries are lost (that rate is still recorded), so every server
    has figures at the rates the targets name; the best rate with p99 under the target is
    recorded too."""
    sizes = ctx.sizes
    best = 0
    meeting = True  # every rate so far held p99 under the target
    for rate in sizes.rates:
        time.sleep(SETTLE_SECONDS)
        config = ctx.client_config(server, sizes.clients)
        config["mode"] = "publish"
        config["publish"] = {"url": server.publish_url, "headers": server.publish_headers(),
                             "channel": CHANNEL, "count": max(1, int(rate * sizes.rate_seconds)),
                             "rate": rate, "concurrency": 64}
        summary = run_client(config)
        check_connected(summary, sizes.clients)
        stats = summary.get("latency") or {}
        for name in ("p50", "p99", "max"):
            ctx.record("latency", server, f"{name} ms @{rate}/s", stats.get(name))
        if summary.get("lost"):
            ctx.record("latency", server, f"lost @{rate}/s", summary["lost"])
        p99 = stats.get("p99")
        if p99 is None or p99 > P99_GIVE_UP_MS or summary.get("lost"):
            break
        meeting = meeting and p99 <= P99_TARGET_MS
        if meeting:
            best = rate
    ctx.record("latency", server, f"max rate p99<{P99_TARGET_MS:.0f}ms", best)


def capacity(ctx: Context, server: Server) -> None:
    """For each size: a fresh server, N idle connections (auth, no subscribe), the time
    to connect them all and the server's RSS growth per connection."""
    for size in ctx.sizes.capacity:
        server.restart()
        time.sleep(0.5)
        before, cpu_before = server.rss(), server.cpu()
        config = ctx.client_config(server, size, channel=None)
        with HeldClients(config, ctx.env.log_dir / "load-client.log") as held:
            ready = held.ready
            cpu_after = server.cpu()
            time.sleep(1.0)
            after = server.rss()
            held.go(0)
            held.finish()
        connected = ready.get("connected", 0)
        seconds = (ready.get("connect_ms") or 0) / 1000
        label = f"@{size // 1000}k" if size >= 1000 else f"@{size}"
        ctx.record("capacity", server, f"connect s {label}", seconds)
        ctx.record("capacity", server, f"accepts/s {label}", connected / seconds if seconds else 0)
        ctx.record("capacity", server, f"KB/conn {label}",
                   (after - before) / max(connected, 1) / 1024)
        # The server's own CPU per connect: what wall-clock accepts/s measures through the
        # noise of a load client and a server sharing two cores.
        ctx.record("capacity", server, f"CPU ms/conn {label}",
                   (cpu_after - cpu_before) * 1000 / max(connected, 1))
        if ready.get("failed"):
            ctx.record("capacity", server, f"failed {label}", ready["failed"])
    server.restart()


def emitter(ctx: Context, server: Server) -> None:
    """Hub only: fan-out of publications made the way workers make them (events.publish
    in a separate process in worker mode), as fast as that process can."""
    if not isinstance(server, HubServer):
        return
    sizes = ctx.sizes
    env = ctx.env.hub_env(server.async_mode)
    argv = [PYTHON, "-m", "bench.emitter", CHANNEL, str(sizes.fanout_pubs)]
    config = ctx.client_config(server, sizes.clients)
    with HeldClients(config, ctx.env.log_dir / "load-client.log") as held, \
            subprocess.Popen(argv, cwd=ROOT, env=env, text=True, stdin=subprocess.PIPE,
                             stdout=subprocess.PIPE, stderr=sys.stderr) as process:
        assert process.stdout is not None and process.stdin is not None
        first = process.stdout.readline()
        if '"ready"' not in first:
            raise ClientError(f"emitter did not start: {first!r}")
        held.go(sizes.fanout_pubs)
        process.stdin.write("start\n")
        process.stdin.flush()
        done = json.loads(process.stdout.readline() or "{}")
        process.wait(timeout=60)
        summary = held.finish()
    check_connected(summary, sizes.clients)
    record_delivery(ctx, "emitter", server, summary)
    if done.get("seconds"):
        ctx.record("emitter", server, "publish calls/s", done["published"] / done["seconds"])


# Worker setups for the task round trip: run.py's default, and a thread pool wide enough
# to run every task of the burst at once (demo.count mostly sleeps, as I/O-bound tasks do).
THREADS_SETUP = ("threads x100", "threads", 100)
GEVENT_SETUP = ("gevent x100", "gevent", 100)
WORKER_SETUPS = [("prefork x2", None, None), THREADS_SETUP, GEVENT_SETUP]


def tasks(ctx: Context, server: Server) -> None:
    """Hub only: K concurrent demo.count tasks of ~0.5 s (2 steps of 0.25 s); POST to
    `task.succeeded` at the owner's client, minus the task's own runtime (started_at to
    finished_at). Once per worker setup, each after a warm-up burst of K (the pools of
    connections and threads fill once per process; the figure is the steady state).
    Alongside `hub`, the floor: bare Celery on the same Redis and pool (bench.celery_floor)."""
    if not isinstance(server, HubServer):
        return
    if server.name == "hub":
        record_round_trip(ctx, "celery", GEVENT_SETUP[0], celery_floor(ctx))
    for label, pool, concurrency in WORKER_SETUPS:
        if label.split()[0] not in ctx.sizes.worker_setups:
            continue
        worker = HubWorker(ctx.env, concurrency, server.root, pool)
        record_round_trip(ctx, server, label, task_round_trip(ctx, server, worker))


def record_round_trip(ctx: Context, server: Server | str, label: str,
                      result: dict[str, Any]) -> None:
    metric = f"({label})"
    ctx.record("tasks", server, f"overhead p50 ms {metric}", result["overhead"]["p50"])
    ctx.record("tasks", server, f"overhead p99 ms {metric}", result["overhead"]["p99"])
    # Where the round trip goes (p99 of each leg; the legs' tails need not coincide).
    ctx.record("tasks", server, f"POST to 202 p99 ms {metric}", result["accepted"]["p99"])
    ctx.record("tasks", server, f"queued to started p99 ms {metric}", result["waited"]["p99"])
    ctx.record("tasks", server, f"finished to client p99 ms {metric}",
               result["delivered"]["p99"])
    ctx.record("tasks", server, f"not succeeded {metric}", ctx.sizes.tasks - result["succeeded"])


def task_round_trip(ctx: Context, server: HubServer, worker: HubWorker) -> dict[str, Any]:
    worker.start()
    try:
        def round_trip(count: int, timeout_ms: int) -> dict[str, Any]:
            config = ctx.client_config(server, 1, channel=None, user="bench-tasks")
            config["mode"] = "tasks"
            config["tasks"] = {
                "url": server.url + "/api/v1/tasks", "headers": server.publish_headers(),
                "count": count, "timeoutMs": timeout_ms,
                "body": {"name": "demo.count", "args": {"steps": 2, "delay": 0.25},
                         "user": "bench-tasks"},
            }
            return run_client(config)["tasks"]

        warm = round_trip(2, 60000)  # waits for the worker to come up
        if warm["succeeded"] < 1:
            raise ClientError(f"worker never finished a task: {warm}")
        round_trip(ctx.sizes.tasks, 180000)
        return round_trip(ctx.sizes.tasks, 180000)
    finally:
        worker.stop()


def celery_floor(ctx: Context) -> dict[str, Any]:
    """The task round trip with nothing of Hub in it, on the gevent setup with run.py's
    options for it: K send_task calls at once from one process, each task sleeping 0.5 s
    and publishing its timings on Redis (see bench.celery_floor). Its "POST to 202" is the
    time to enqueue all K."""
    _, pool, concurrency = GEVENT_SETUP
    env = ctx.env.hub_env(FLOOR_REDIS=ctx.env.redis_url)
    floor = [PYTHON, "-m", "bench.celery_floor"]
    worker_argv = [PYTHON, "-m", "celery", "-A", "bench.celery_floor", "worker", "--loglevel",
                   "WARNING", *worker_options(str(pool), str(concurrency))]
    with open(ctx.env.log_dir / "celery-floor.log", "ab") as log:
        worker = subprocess.Popen(worker_argv, cwd=ROOT, env=env, stdout=log, stderr=log,
                                  stdin=subprocess.DEVNULL, start_new_session=True)
    try:
        def burst() -> dict[str, Any]:
            done = subprocess.run(floor + ["run", "--count", str(ctx.sizes.tasks)], cwd=ROOT,
                                  env=env, check=True, capture_output=True, text=True,
                                  timeout=300)
            return json.loads(done.stdout.strip().splitlines()[-1])

        burst()  # the warm-up, as for Hub
        return burst()
    finally:
        stop_process(worker, timeout=20)


def rest(ctx: Context, server: Server) -> None:
    """REST throughput: POST publish to a channel nobody listens on (every server), and
    for Hub GET /api/v1/tasks/<id>; `rest_concurrency` keep-alive clients."""
    sizes = ctx.sizes
    common = {"concurrency": sizes.rest_concurrency, "durationMs": int(sizes.rest_seconds * 1000),
              "headers": server.publish_headers()}
    cpu_before = server.cpu()
    result = run_rest_load({**common, "url": server.publish_url, "method": "POST",
                            "body": {"channel": "public:rest", "type": "bench.rest",
                                     "data": {"n": 1}}})
    cpu = server.cpu() - cpu_before
    ctx.record("rest", server, "POST publish req/s", result["rps"])
    ctx.record("rest", server, "POST publish CPU ms/req", cpu * 1000 / max(result["requests"], 1))
    ctx.record("rest", server, "POST publish p99 ms", result["latency"]["p99"])
    if result["requests"] != result["ok"]:
        ctx.record("rest", server, "POST publish non-2xx", result["requests"] - result["ok"])
    if isinstance(server, HubServer):
        task_id = create_task(server)
        result = run_rest_load({**common, "url": f"{server.url}/api/v1/tasks/{task_id}",
                                "method": "GET"})
        ctx.record("rest", server, "GET task req/s", result["rps"])
        ctx.record("rest", server, "GET task p99 ms", result["latency"]["p99"])


def create_task(server: HubServer) -> str:
    import urllib.request

    body = json.dumps({"name": "demo.count", "args": {"steps": 1, "delay": 0},
                       "user": "bench-rest"}).encode()
    request = urllib.request.Request(server.url + "/api/v1/tasks", data=body, method="POST",
                                     headers={"Content-Type": "application/json",
                                              **server.publish_headers()})
    with urllib.request.urlopen(request, timeout=10) as response:
        return str(json.loads(response.read())["id"])


# The flood scenario's server runs Hub's default per-connection rate (the bench's
# HUB_SOCKET_RATE of 1000 is for load clients that share one connection per user).
FLOOD_SOCKET_RATE = 20
# (label, event name, payload): a name outside the allow-list, and a real handler's.
FLOOD_VARIANTS = [("unknown", "no.such.event", {}),
                  ("subscribe", "subscribe", {"channel": "public:flood"})]
VICTIM_INTERVAL_MS = 100  # each victim's request rate, 10/s: well under the rate limit
VICTIM_SLOW_MS = 50  # the issue's target for victims' p99 during a flood
FLOOD_TIMEOUT_S = 25.0  # a flood the server neither answers in full nor closes ends here


class RatedHubServer(HubServer):
    """`server` again, with its own HUB_SOCKET_RATE."""

    def __init__(self, server: HubServer, socket_rate: int) -> None:
        super().__init__(server.env, server.name, server.deflate, server.async_mode,
                         server.root, server.processes)
        self.socket_rate = socket_rate

    def command(self) -> tuple[list[str], dict[str, str], Path]:
        argv, env, cwd = super().command()
        return argv, {**env, "HUB_SOCKET_RATE": str(self.socket_rate)}, cwd


def flood(ctx: Context, server: Server) -> None:
    """Hub only: one connection floods acked events as fast as its socket takes them while
    `flood_victims` other connections time a subscribe or unsubscribe each every 100 ms.
    Victims' ack round trip idle, then during a flood of an unknown event name and of
    `subscribe` (each phase from the flood's start until it ends, at least `flood_seconds`);
    the flood's events answered, when the server closed the flooder, the hub's CPU."""
    if not isinstance(server, HubServer):
        return
    rated = RatedHubServer(server, FLOOD_SOCKET_RATE)
    server.stop()
    try:
        rated.start()
        flood_phases(ctx, rated)
    finally:
        rated.stop()
        server.start()


def flood_phases(ctx: Context, server: HubServer) -> None:
    sizes = ctx.sizes
    log = ctx.env.log_dir / "flood.log"
    config = {"url": server.url, "deflate": ctx.client_deflate, "connectTimeoutMs": 30000}
    victims_config = {**config, "role": "victims", "clients": sizes.flood_victims,
                      "token": server.token("bench-victim"), "intervalMs": VICTIM_INTERVAL_MS,
                      "slowMs": VICTIM_SLOW_MS}
    with HeldClients(victims_config, log, timeout=60, script="flood.js") as victims:
        if victims.ready.get("connected", 0) < sizes.flood_victims:
            raise ClientError(f"victims: {victims.ready}")
        time.sleep(1.0)  # every victim past its first requests
        victims.say("phase idle")
        time.sleep(sizes.flood_seconds)
        floods = {}
        for label, event, payload in FLOOD_VARIANTS:
            victims.say(f"phase {label}")
            started = time.monotonic()
            floods[label] = run_flooder(ctx, server, {
                **config, "role": "flooder", "token": server.token("bench-flooder"),
                "event": event, "payload": payload, "count": sizes.flood_events,
                "timeoutMs": int(FLOOD_TIMEOUT_S * 1000)})
            time.sleep(max(0.0, sizes.flood_seconds - (time.monotonic() - started)))
            victims.say(f"phase after {label}")
            time.sleep(1.0)  # the server settles before the next phase
        summary = victims.finish()
    phases = summary.get("phases") or {}
    for label in ["idle"] + [label for label, _, _ in FLOOD_VARIANTS]:
        record_victims(ctx, server, label, phases.get(label) or {})
    for label, result in floods.items():
        record_flood(ctx, server, label, result)
    if summary.get("disconnects"):
        ctx.record("flood", server, "victims disconnected", summary["disconnects"])


def run_flooder(ctx: Context, server: HubServer, config: dict[str, Any]) -> dict[str, Any]:
    """One flooder from "go" to its end, with the hub's CPU seconds over that span."""
    log = ctx.env.log_dir / "flood.log"
    with HeldClients(config, log, timeout=FLOOD_TIMEOUT_S + 30, script="flood.js") as flooder:
        cpu_before = server.cpu()
        flooder.say("go")
        result = flooder.finish()  # returns as the flooder ends: closed, answered or timed out
        result["cpu_s"] = server.cpu() - cpu_before
    return result


def record_victims(ctx: Context, server: Server, label: str, phase: dict[str, Any]) -> None:
    name = "idle" if label == "idle" else f"{label} flood"
    stats = phase.get("latency") or {}
    for stat in ("p50", "p99", "max"):
        ctx.record("flood", server, f"victims {stat} ms ({name})", stats.get(stat))
    ctx.record("flood", server, f"victims acks over {VICTIM_SLOW_MS} ms ({name})",
               phase.get("slow"))
    failed = sum((phase.get("errors") or {}).values()) + (phase.get("unanswered") or 0)
    if failed or not stats.get("count"):
        ctx.record("flood", server, f"victims refused or unanswered ({name})", failed)


def record_flood(ctx: Context, server: Server, label: str, result: dict[str, Any]) -> None:
    name = f"({label} flood)"
    ctx.record("flood", server, f"flood events sent {name}", result.get("sent"))
    ctx.record("flood", server, f"flood events acked {name}", result.get("acked"))
    ctx.record("flood", server, f"flooder closed {name}", 1 if result.get("reason") == "closed"
               else 0)
    if result.get("reason") == "closed":
        ctx.record("flood", server, f"closed after ms {name}", result.get("closed_ms"))
        closing = result.get("closing") or {}
        ctx.record("flood", server, f"told why (connection.closing) {name}",
                   1 if closing.get("code") == "rate_limited" else 0)
        # 1006: the socket ended without a closing frame (reset), losing what was unread.
        ctx.record("flood", server, f"closed without close frame {name}",
                   1 if result.get("close_code") == 1006 else 0)
    ctx.record("flood", server, f"flood ms {name}", result.get("flood_ms"))
    ctx.record("flood", server, f"hub CPU s {name}", result.get("cpu_s"))


SCENARIOS: dict[str, Callable[[Context, Server], None]] = {
    "capacity": capacity,
    "fanout": fanout,
    "latency": latency,
    "emitter": emitter,
    "tasks": tasks,
    "rest": rest,
    "flood": flood,
}
