"""Celery settings shared by the worker, beat and the hub (which only enqueues).

JSON only, at-least-once delivery, one message at a time per worker process.
Broker and backend URLs come from the Flask config (HUB_BROKER_URL, REDIS_URL).
"""

import os

from celery.schedules import crontab

task_serializer = "json"
result_serializer = "json"
accept_content = ["json"]
result_accept_content = ["json"]

# At-least-once: ack after the work, requeue if the worker process dies mid-task.
task_acks_late = True
task_reject_on_worker_lost = True
worker_prefetch_multiplier = 1
# Results live in SQL (the task record); Celery's own result backend stays quiet.
task_ignore_result = True
# One result backend per process, not one per thread: Celery looks it up after every task
# (even an ignored result), and per thread means per greenlet in a gevent worker and per
# greenthread in the hub, so each task built a RedisBackend, reading redis-py's package
# metadata from disk: 10 % of a gevent worker's time. redis-py's client is thread-safe.
result_backend_thread_safe = True

task_time_limit = int(os.environ.get("HUB_TASK_TIME_LIMIT") or 600)
task_soft_time_limit = max(1, task_time_limit - 10)

broker_connection_retry_on_startup = True
broker_connection_timeout = 3
# Fail an enqueue in about a second when the broker is down, so REST can answer 503. One
# retry only: against a stalled broker each attempt waits HUB_REDIS_TIMEOUT (kombu's
# socket_timeout, tasks.celery_app), and a timed-out push may still land later.
task_publish_retry_policy = {"max_retries": 1, "interval_start": 0, "interval_step": 0.2,
                             "interval_max": 0.3}
worker_hijack_root_logger = False
# Task events on from the start, so Flower (`celery -A tasks flower`) and `celery events`
# see every task without switching them on remotely; "sent" marks the enqueue too.
worker_send_task_events = True
task_send_sent_event = True
enable_utc = True
timezone = "UTC"

# Beat takes a Redis lock so exactly one scheduler runs; its schedule state stays in
# memory (Celery's default persists it with the shelve module, which is not JSON).
beat_scheduler = "tasks.beat:LockedScheduler"
beat_max_loop_interval = 5



def every(when: float | crontab, task: str, name: str, **args: object) -> dict[str, object]:
    """A beat entry for a hub_task; its runs publish schedule.ran on schedule:<name>. `when`
    is seconds between runs or a crontab, e.g. every(crontab(minute="*/5"), ...)."""
    return {"task": task, "schedule": when, "kwargs": {"schedule": name, **args}}


def _seconds(name: str, default: float) -> float:
    return float(os.environ.get(name) or default)


beat_schedule: dict[str, dict[str, object]] = {
    "notifications-digest": every(_seconds("HUB_DIGEST_SECONDS", 24 * 3600),
                                  "notifications.digest", "notifications-digest"),
    "hub-cleanup": every(_seconds("HUB_CLEANUP_SECONDS", 3600), "hub.cleanup", "hub-cleanup"),
}

if (os.environ.get("HUB_ENV") or "development") == "development":
    # A visible heartbeat for the dashboard's schedule feed.
    beat_schedule["demo-heartbeat"] = every(_seconds("HUB_DEV_HEARTBEAT_SECONDS", 10),
                                            "demo.count", "demo-heartbeat", steps=3, delay=0.2)
