"""On a real Redis: task.stalled is told once however many web processes sweep at once, and
the publish-if-first script drops an announcement that lost the race to a later event."""

import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from flask import Flask

from events import EXTENSION, Position
from hub import create_app
from models import Task, db
from models.base import insert_detached
from tasks.heartbeat import heartbeat_key, sweep

pytestmark = pytest.mark.integration


@pytest.fixture
def redis_app(redis_url: str, tmp_path: Path) -> Iterator[Flask]:
    app = create_app({
        "HUB_PROCESS": "worker", "INSTANCE_DIR": str(tmp_path),
        "SQLALCHEMY_DATABASE_URI": f"sqlite:///{tmp_path / 'hub.db'}",
        "REDIS_URL": f"{redis_url.rsplit('/', 1)[0]}/8", "HUB_BROKER_URL": "memory://",
        "HUB_REDIS_PREFIX": f"s{uuid.uuid4().hex[:6]}", "HUB_STALL_SECONDS": 3.0,
    })
    with app.app_context():
        db.create_all()
    yield app
    with app.app_context():
        db.session.remove()
        db.engine.dispose()


def types(app: Flask, channel: str) -> list[str]:
    history = app.extensions[EXTENSION].backend
    epoch = history.recover(channel, None).position.epoch
    return [p["type"] for p in history.recover(channel, Position(0, epoch)).publications]


def test_a_stall_is_told_once_by_concurrent_sweepers(redis_app: Flask) -> None:
    app = redis_app
    with app.app_context():
        task_id = insert_detached(Task, [{"id": "stalled-1", "name": "demo.count",
                                          "state": "started", "user": "zoe", "args": {},
                                          "attempts": 1}])[0].id
    client = app.extensions["hub.redis"]
    key = heartbeat_key(app.config["HUB_REDIS_PREFIX"])
    now = time.time()
    client.zadd(key, {task_id: now - 10, "fresh": now, "ended": now - 10})
    told: list[list[str]] = []
    start = threading.Barrier(6)

    def one_sweeper() -> None:
        start.wait()
        told.append(sweep(app, now))

    threads = [threading.Thread(target=one_sweeper) for _ in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(sum(told, [])) == [task_id]
    assert types(app, f"task:{task_id}") == ["task.stalled"]
    assert types(app, "user:zoe") == ["task.stalled"]
    # The stale heartbeats are gone, the fresh one stays.
    assert [m.decode() for m in client.zrange(key, 0, -1)] == ["fresh"]


def test_redis_append_first_refuses_after_any_publication(redis_app: Flask) -> None:
    history = redis_app.extensions[EXTENSION].backend
    channel = f"task:{uuid.uuid4()}"
    tail = '"channel":"%s","type":"t","data":%d}'
    first = history.append_first(channel, channel, "t", tail % (channel, 1))
    assert first is not None and first.offset == 1
    assert history.append_first(channel, channel, "t", tail % (channel, 2)) is None
    other = f"task:{uuid.uuid4()}"
    history.append(other, other, "task.started", tail % (other, 1))
    assert history.append_first(other, other, "task.queued", tail % (other, 2)) is None
    assert history.recover(other, None).position.offset == 1
