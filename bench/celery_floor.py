"""The task round trip's floor: bare Celery on the same broker and worker setup as Hub.

K tasks are requested at once (one `send_task` after another, as one web process takes K
simultaneous POSTs); each sleeps like demo.count, then publishes its timings on a Redis
channel the caller listens to. The overhead is arrival minus request minus the task's
own runtime, as in the `tasks` scenario: what Celery, Redis and the worker pool cost on
this machine before Hub does anything (no HTTP, no database, no Socket.IO).

    python -m celery -A bench.celery_floor worker --pool gevent --concurrency 100 ...
                                  (with FLOOR_REDIS; the bench adds run.py's pool options)
    python -m bench.celery_floor run --count 100 --delay 0.5              (prints JSON)

The worker starts through Celery's own command line, which monkey-patches for gevent
before anything is imported, as `run.py worker` does for Hub.
"""

import argparse
import json
import math
import os
import sys
import threading
import time
from typing import Any

import redis
from celery import Celery

CHANNEL = "bench:floor"

app = Celery("floor")
app.conf.update(
    broker_url=os.environ.get("FLOOR_REDIS", "redis://127.0.0.1:6379/0"),
    task_serializer="json", accept_content=["json"], task_ignore_result=True,
    task_acks_late=True, worker_prefetch_multiplier=1, worker_hijack_root_logger=False,
    broker_connection_retry_on_startup=True, worker_send_task_events=False,
    task_default_queue="bench-floor",  # never Hub's queue, whatever else shares the Redis
)


_publisher: list[redis.Redis] = []


def publisher() -> redis.Redis:
    """One client (a thread-safe connection pool) per worker process."""
    if not _publisher:
        _publisher.append(redis.Redis.from_url(app.conf.broker_url))
    return _publisher[0]


@app.task(name="floor.sleep")
def sleep_task(task_id: int, delay: float) -> None:
    started = time.time()
    time.sleep(delay)
    finished = time.time()
    publisher().publish(CHANNEL, json.dumps({"id": task_id, "started": started,
                                        "finished": finished}))


def percentile(values: list[float], p: float) -> float | None:
    """The load client's definition: the value at rank ceil(p% of n)."""
    if not values:
        return None
    ordered = sorted(values)
    return ordered[max(0, math.ceil(p / 100 * len(ordered)) - 1)]


def run(count: int, delay: float, timeout: float) -> dict[str, Any]:
    """One burst; the summary has the shape of the load client's `tasks` summary, with
    the time to enqueue all `count` tasks as the `accepted` leg."""
    client = redis.Redis.from_url(app.conf.broker_url)
    pubsub = client.pubsub(ignore_subscribe_messages=True)
    pubsub.subscribe(CHANNEL)
    arrived: dict[int, tuple[float, dict[str, Any]]] = {}

    def listen() -> None:
        deadline = time.time() + timeout
        while len(arrived) < count and time.time() < deadline:
            message = pubsub.get_message(timeout=0.5)
            if message is not None:
                body = json.loads(message["data"])
                arrived[body["id"]] = (time.time(), body)

    # Warm up: a first task proves the worker is consuming (it may still be starting).
    app.send_task("floor.sleep", args=[-1, 0.0])
    deadline = time.time() + 60
    while time.time() < deadline and pubsub.get_message(timeout=0.5) is None:
        pass
    listener = threading.Thread(target=listen, daemon=True)
    listener.start()
    sent_at = time.time()  # every task is requested at this instant
    for task_id in range(count):
        app.send_task("floor.sleep", args=[task_id, delay])
    enqueued_ms = (time.time() - sent_at) * 1000
    listener.join(timeout + 1)
    overhead = [(at - sent_at - (body["finished"] - body["started"])) * 1000
                for at, body in arrived.values()]
    waited = [(body["started"] - sent_at) * 1000 for _, body in arrived.values()]
    delivered = [(at - body["finished"]) * 1000 for at, body in arrived.values()]
    return {
        "succeeded": len(arrived),
        "overhead": {"p50": percentile(overhead, 50), "p99": percentile(overhead, 99)},
        "accepted": {"p99": enqueued_ms},
        "waited": {"p99": percentile(waited, 99)},
        "delivered": {"p99": percentile(delivered, 99)},
    }


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.celery_floor")
    sub = parser.add_subparsers(dest="command", required=True)
    runner = sub.add_parser("run")
    runner.add_argument("--count", type=int, default=100)
    runner.add_argument("--delay", type=float, default=0.5)
    runner.add_argument("--timeout", type=float, default=120.0)
    args = parser.parse_args(argv)
    print(json.dumps(run(args.count, args.delay, args.timeout)), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
