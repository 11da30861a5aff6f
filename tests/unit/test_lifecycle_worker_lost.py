"""A delivery that finds its task still `started` is a redelivery after a dead worker: told as a
worker_lost retry, or failed once its attempts are spent; stalls are told to the task's channel
and its owner. Plus the broker settings derived from HUB_STALL_SECONDS."""

from typing import Any

import pytest
from flask import Flask

from events import EXTENSION, Position
from hub.config import load_config
from models import Task, db
from models.base import insert_detached
from tasks import lifecycle, visibility


def publications(app: Flask, channel: str) -> list[dict[str, Any]]:
    history = app.extensions[EXTENSION].backend
    epoch = history.recover(channel, None).position.epoch
    return history.recover(channel, Position(0, epoch)).publications


def new_task(state: str = "queued", attempts: int = 0, user: str | None = "alice") -> str:
    return insert_detached(Task, [{"id": f"t-{state}-{attempts}", "name": "demo.count",
                                   "state": state, "user": user, "args": {"steps": 1},
                                   "attempts": attempts}])[0].id


def test_a_first_delivery_just_starts(app: Flask) -> None:
    with app.app_context():
        task_id = new_task()
        task = lifecycle.start(task_id, 3)
        assert task is not None and task.state == "started" and task.attempts == 1
        assert [p["type"] for p in publications(app, f"task:{task_id}")] == ["task.started"]


def test_a_redelivery_of_a_started_task_is_a_worker_lost_retry(app: Flask) -> None:
    with app.app_context():
        task_id = new_task("started", attempts=1)
        task = lifecycle.start(task_id, 3)
        assert task is not None and task.state == "started" and task.attempts == 2
        pubs = publications(app, f"task:{task_id}")
        assert [p["type"] for p in pubs] == ["task.retrying", "task.started"]
        retrying = pubs[0]["data"]
        assert retrying["reason"] == "worker_lost" and retrying["attempt"] == 1
        assert retrying["error"]["type"] == "WorkerLost" and retrying["eta"].endswith("Z")


def test_a_redelivery_past_max_attempts_fails(app: Flask) -> None:
    with app.app_context():
        task_id = new_task("started", attempts=3)
        assert lifecycle.start(task_id, 3) is None
        record = lifecycle.get_task(task_id)
        assert record is not None and record.state == "failed"
        assert record.error["type"] == "WorkerLost" and "3 attempts" in record.error["message"]
        assert [p["type"] for p in publications(app, f"task:{task_id}")] == ["task.failed"]
        assert "task.failed" in [p["type"] for p in publications(app, "user:alice")]


def test_a_redelivery_of_an_ended_task_does_nothing(app: Flask) -> None:
    with app.app_context():
        task_id = new_task("succeeded", attempts=1)
        assert lifecycle.start(task_id, 3) is None
        assert publications(app, f"task:{task_id}") == []


def test_an_error_retry_says_so(app: Flask) -> None:
    with app.app_context():
        task_id = new_task("started", attempts=1)
        lifecycle.retrying(task_id, {"type": "E", "message": "m"}, 2.0)
        assert publications(app, f"task:{task_id}")[0]["data"]["reason"] == "error"


def test_stalled_is_told_to_the_task_and_its_owner_while_started(app: Flask) -> None:
    with app.app_context():
        task_id = new_task("started", attempts=1)
        assert lifecycle.stalled(task_id, 1_700_000_000.5)
        data = {"task_id": task_id, "attempt": 1, "last_heartbeat": "2023-11-14T22:13:20.500Z"}
        assert [(p["type"], p["data"]) for p in publications(app, f"task:{task_id}")] == [
            ("task.stalled", data)]
        assert [p["data"] for p in publications(app, "user:alice")] == [data]
        ended = new_task("succeeded", attempts=1)
        assert not lifecycle.stalled(ended, 1_700_000_000.0)
        assert not lifecycle.stalled("no-such-task", 1_700_000_000.0)
        db.session.remove()


def test_the_installed_kombu_has_the_layout_we_rely_on() -> None:
    visibility.check_layout()


def test_a_changed_layout_is_refused_naming_kombu(monkeypatch: pytest.MonkeyPatch) -> None:
    from kombu.transport import redis as kombu_redis

    monkeypatch.delattr(kombu_redis.Channel, "unacked_index_key")
    with pytest.raises(visibility.LayoutChanged, match=r"kombu \d+\.\d+.*unacked_index_key"):
        visibility.check_layout()


def test_broker_settings_follow_the_stall_threshold() -> None:
    config = load_config({}, {})
    assert config["HUB_STALL_SECONDS"] == 30 and config["HUB_VISIBILITY_TIMEOUT"] == 45
    options = visibility.transport_options(30, 45)
    # The sweep's lock lapses within an interval: a worker killed holding it must not stop
    # every other worker's restores for kombu's default 5 minutes.
    assert options == {"visibility_timeout": 45, "unacked_restore_interval": 5.0,
                       "unacked_restore_throttle": 1, "unacked_mutex_expire": 5.0}
    assert visibility.refresh_period(30, 45) == 10
    small = load_config({"HUB_STALL_SECONDS": "3"}, {})
    assert small["HUB_VISIBILITY_TIMEOUT"] == 4.5
    # An explicit short timeout shortens the beat, so a live worker still outpaces it.
    assert visibility.refresh_period(30, 5) == pytest.approx(5 / 3)
