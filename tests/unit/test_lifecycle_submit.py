"""Submission in order: commit, enqueue, then announce; task.queued never lands after a later
event, and a failed enqueue leaves neither a row nor an event."""

import json
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from kombu.exceptions import OperationalError
from sqlalchemy import func, select

from events import EXTENSION, MemoryBackend, Position, publish
from models import Task, db


def backend(app: Flask) -> MemoryBackend:
    return app.extensions[EXTENSION].backend


def channel_types(app: Flask, channel: str) -> list[str]:
    history = backend(app)
    epoch = history.recover(channel, None).position.epoch
    return [p["type"] for p in history.recover(channel, Position(0, epoch)).publications]


def task_channels(app: Flask) -> list[str]:
    return [name for name in backend(app)._channels if name.startswith("task:")]


def tail(n: int) -> str:
    return json.dumps({"channel": "c", "type": "t", "data": n})[1:]


def test_append_first_publishes_only_as_the_first() -> None:
    history = MemoryBackend(size=10, ttl=60)
    first = history.append_first("c", "c", "t", tail(1))
    assert first is not None and first.offset == 1
    assert history.append_first("c", "c", "t", tail(2)) is None
    assert history.append("c", "c", "t", tail(3)).offset == 2
    assert history.append_first("c", "c", "t", tail(4)) is None
    epoch = history.recover("c", None).position.epoch
    assert [p["data"] for p in history.recover("c", Position(0, epoch)).publications] == [1, 3]


def test_submit_announces_queued_after_the_enqueue(app: Flask, client: FlaskClient,
                                                   auth: dict[str, str],
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    celery = app.extensions["celery"]
    original = celery.send_task
    seen_at_enqueue: list[list[str]] = []

    def send_task(name: str, **kwargs: Any) -> Any:
        with app.app_context():
            committed = db.session.scalar(select(Task).where(Task.id == kwargs["task_id"]))
            assert committed is not None and committed.state == "queued"
        seen_at_enqueue.append(channel_types(app, f"task:{kwargs['task_id']}"))
        return original(name, **kwargs)

    monkeypatch.setattr(celery, "send_task", send_task)
    created = client.post("/api/v1/tasks", json={"name": "demo.count"}, headers=auth)
    assert created.status_code == 202
    assert seen_at_enqueue == [[]]  # nothing announced before the enqueue
    assert channel_types(app, f"task:{created.get_json()['id']}") == ["task.queued"]


def test_queued_is_not_published_after_started(app: Flask, client: FlaskClient,
                                               auth: dict[str, str],
                                               monkeypatch: pytest.MonkeyPatch) -> None:
    """A fast worker publishes task.started before the web process announces task.queued."""
    celery = app.extensions["celery"]

    def worker_wins(name: str, **kwargs: Any) -> None:
        with app.app_context():
            publish(f"task:{kwargs['task_id']}", "task.started", {"id": kwargs["task_id"]})

    monkeypatch.setattr(celery, "send_task", worker_wins)
    created = client.post("/api/v1/tasks", json={"name": "demo.count"}, headers=auth)
    assert created.status_code == 202
    assert channel_types(app, f"task:{created.get_json()['id']}") == ["task.started"]


def test_failed_enqueue_leaves_no_row_and_no_event(app: Flask, client: FlaskClient,
                                                   auth: dict[str, str],
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    def broker_down(name: str, **kwargs: Any) -> None:
        raise OperationalError("Error 111 connecting to the broker")

    monkeypatch.setattr(app.extensions["celery"], "send_task", broker_down)
    response = client.post("/api/v1/tasks", json={"name": "demo.count", "user": "alice"},
                           headers=auth)
    assert response.status_code == 503
    assert response.headers["Content-Type"].startswith("application/problem+json")
    with app.app_context():
        assert db.session.scalar(select(func.count()).select_from(Task)) == 0
    assert task_channels(app) == []
    assert channel_types(app, "user:alice") == []


def test_a_failed_announcement_still_returns_the_enqueued_task(
        app: Flask, client: FlaskClient, auth: dict[str, str],
        monkeypatch: pytest.MonkeyPatch) -> None:
    def redis_down(*args: Any, **kwargs: Any) -> None:
        raise ConnectionError("history unavailable")

    monkeypatch.setattr(backend(app), "append_first", redis_down)
    created = client.post("/api/v1/tasks", json={"name": "demo.count"}, headers=auth)
    assert created.status_code == 202  # it is queued and will run: the worker's events follow
    record = client.get(f"/api/v1/tasks/{created.get_json()['id']}", headers=auth).get_json()
    assert record["state"] == "queued"
