"""Heartbeats of running tasks, and the sweep that tells when a task's worker went silent.

A worker's main process beats every `refresh_period` for each hub task it runs: a Redis
sorted set, task id -> time of its last beat (`<prefix>:tasks:heartbeat`). The same beat
re-scores the broker messages it holds (tasks.visibility). A task also beats when it starts
and leaves the set when its attempt ends, from the process that runs it.

The web process sweeps (it is always there; beat is optional and one of a kind): a task
whose last beat is older than HUB_STALL_SECONDS is claimed with ZREM, which exactly one
sweeping process wins, and if its SQL state is still `started` it publishes task.stalled.
The worker that picks the redelivered message up tells task.retrying (worker_lost).
"""

import logging
import threading
import time
from collections.abc import Callable
from typing import Any

import redis
from celery import Celery
from celery.worker import state as worker_state
from flask import Flask, current_app

from events.redis_backend import connect
from tasks import lifecycle
from tasks.registry import lookup
from tasks.visibility import UnackedRefresher, delivery_tag, refresh_period

log = logging.getLogger(__name__)


def heartbeat_key(prefix: str) -> str:
    return f"{prefix}:tasks:heartbeat"


def _client_and_key(app: Flask) -> tuple["redis.Redis", str]:
    return app.extensions["hub.redis"], heartbeat_key(app.config["HUB_REDIS_PREFIX"])


# -- in the process that runs the task ---------------------------------------------------


def attempt_started(task_id: str) -> None:
    """Beat once at the start: a worker that dies before its first periodic beat is noticed."""
    _quietly(lambda client, key: client.zadd(key, {task_id: time.time()}))


def attempt_ended(task_id: str) -> None:
    _quietly(lambda client, key: client.zrem(key, task_id))


def _quietly(command: Callable[["redis.Redis", str], Any]) -> None:
    """A beat is advisory: a Redis error must not fail the task (its events will say)."""
    if current_app.config["HUB_HISTORY_BACKEND"] == "memory":
        return  # unit tests: no Redis
    try:
        command(*_client_and_key(current_app))
    except redis.RedisError:
        log.warning("task heartbeat not recorded", exc_info=True)


# -- in the worker's main process --------------------------------------------------------


def running_requests() -> list[Any]:
    """The requests this worker holds (reserved, waiting for an ETA, or running): the
    dict's values are copied in one step, safe against the consumer changing it."""
    return list(worker_state.requests.values())


class Heartbeat:
    """The worker's periodic beat; a daemon thread (a greenlet under a gevent pool)."""

    def __init__(self, app: Flask, celery_app: Celery) -> None:
        self.app = app
        config = app.config
        self.period = refresh_period(config["HUB_STALL_SECONDS"],
                                     config["HUB_VISIBILITY_TIMEOUT"])
        # Its own client: a prefork pool forks new children while this thread runs, and the
        # children keep using the app's.
        self.client = connect(config["REDIS_URL"])
        self.key = heartbeat_key(config["HUB_REDIS_PREFIX"])
        self.refresher = UnackedRefresher(celery_app)
        self.refresh_unacked = self.refresher.applies()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="hub-heartbeat", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()

    def _run(self) -> None:
        while not self._stop.wait(self.period):
            try:
                self.beat()
            except Exception:  # Redis away, a stale connection: the next beat tries again
                log.warning("heartbeat failed", exc_info=True)

    def beat(self, now: float | None = None) -> None:
        now = time.time() if now is None else now
        held = running_requests()
        running = {request.id: now for request in held
                   if request.time_start and lookup(request.name) is not None}
        if running:
            self.client.zadd(self.key, running)
        if self.refresh_unacked:
            # Ours first, then the sweep: it restores only messages no live worker re-scored.
            self.refresher.refresh([tag for tag in map(delivery_tag, held) if tag], now)
            self.refresher.restore_expired()


# -- in the web process ------------------------------------------------------------------


def sweep(app: Flask, now: float | None = None) -> list[str]:
    """One pass: claim the heartbeats older than HUB_STALL_SECONDS and tell the stalls.
    Returns the ids this process published task.stalled for."""
    client, key = _client_and_key(app)
    now = time.time() if now is None else now
    due = client.zrangebyscore(key, "-inf", now - app.config["HUB_STALL_SECONDS"],
                               withscores=True)
    told = []
    for member, last in due:
        if client.zrem(key, member) != 1:
            continue  # another web process claimed it
        task_id = member.decode() if isinstance(member, bytes) else member
        with app.app_context():
            if lifecycle.stalled(task_id, last):
                told.append(task_id)
    return told


def sweep_forever(app: Flask, sleep: Callable[[float], Any]) -> None:
    period = app.config["HUB_STALL_SECONDS"] / 6
    while True:
        sleep(period)
        try:
            sweep(app)
        except Exception:  # Redis or the database away: the next pass tries again
            log.warning("stall sweep failed", exc_info=True)


def install_sweeper(app: Flask) -> None:
    """Start the sweep with the web process's first request (a /readyz probe will do), as the
    realtime listener starts: processes that never serve (CLI commands) never sweep."""
    if app.config["HUB_HISTORY_BACKEND"] == "memory":
        return  # unit tests: no Redis, no workers

    def first_request() -> None:  # returns None: a before_request value would be the reply
        start_sweeper(app)

    app.before_request(first_request)


def start_sweeper(app: Flask) -> bool:
    """Start the sweep in this web process, once, on its async library (a green thread
    under eventlet or gevent)."""
    if app.extensions.get("hub.stall_sweeper"):
        return False
    app.extensions["hub.stall_sweeper"] = True
    socketio = app.extensions.get("socketio")
    if socketio is not None:
        socketio.start_background_task(sweep_forever, app, socketio.sleep)
    else:
        threading.Thread(target=sweep_forever, args=(app, time.sleep), name="hub-stall-sweep",
                         daemon=True).start()
    return True
