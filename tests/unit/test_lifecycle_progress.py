"""Progress is best effort on the wire: a Redis that does not answer must not fail the task."""

import pytest
import redis
from flask import Flask

from events import EXTENSION
from models import Task
from models.base import insert_detached
from tasks import lifecycle


def test_progress_survives_a_redis_that_does_not_answer(
        app: Flask, monkeypatch: pytest.MonkeyPatch) -> None:
    def stalled(*_: object) -> None:
        raise redis.TimeoutError("Timeout reading from socket")

    with app.app_context():
        task_id = insert_detached(Task, [{"id": "t-progress", "name": "demo.count",
                                          "state": "started", "user": "alice",
                                          "args": {}}])[0].id
        monkeypatch.setattr(app.extensions[EXTENSION].backend, "append", stalled)
        assert lifecycle.progress(task_id, 3, 10, "step 3") is True
        assert lifecycle.get_task(task_id).progress["current"] == 3
