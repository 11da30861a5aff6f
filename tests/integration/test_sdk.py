"""The Python SDK (clients/python, hub_client) against a running stack: hub, worker, beat."""

import subprocess
import sys
import time
import uuid
from collections.abc import Iterator

import pytest
import redis
from hub_client import (
    Conflict,
    Forbidden,
    HubClient,
    NotFound,
    Publication,
    Unauthorized,
    ValidationFailed,
)

from tests.support.stack import ROOT, Stack

pytestmark = pytest.mark.integration


@pytest.fixture
def hub(stack: Stack) -> Iterator[HubClient]:
    with HubClient(stack.base_url, stack.service_key, timeout=15) as client:
        yield client


@pytest.fixture(scope="session")
def narrow_keys(stack: Stack) -> dict[str, str]:
    """Another service, with only the `tasks` scope."""
    script = (
        "import uuid\n"
        "from hub import create_app\n"
        "from hub.auth import create_service\n"
        "app = create_app({'HUB_PROCESS': 'cli'})\n"
        "with app.app_context():\n"
        "    print(create_service(f'sdk-tasks-{uuid.uuid4().hex[:6]}', ['tasks'])[1])\n"
    )
    out = subprocess.run([sys.executable, "-c", script], cwd=ROOT, env=stack.env(),
                         capture_output=True, text=True, timeout=120, check=True)
    return {"tasks": out.stdout.strip().splitlines()[-1]}


def user() -> str:
    return f"sdk-{uuid.uuid4().hex[:8]}"


def contiguous(events: list[Publication]) -> bool:
    offsets = [event["offset"] for event in events]
    return offsets == list(range(offsets[0], offsets[0] + len(offsets)))


def test_every_rest_operation(stack: Stack, hub: HubClient) -> None:
    assert hub.health() == {"status": "ok"}
    assert hub.ready()["status"] == "ready"
    assert "demo.count" in {t["name"] for t in hub.task_types()}
    assert "demo-heartbeat" in {s["entry"] for s in hub.schedules()}

    owner = user()
    first = hub.submit("demo.count", {"steps": 1, "delay": 0}, user=owner)
    assert first["state"] == "queued" and first["user"] == owner
    assert hub.get_task(first["id"])["id"] == first["id"]
    long = hub.submit("demo.count", {"steps": 200, "delay": 0.2}, user=owner)
    page = hub.list_tasks(user=owner, limit=1)
    assert [t["id"] for t in page["items"]] == [long["id"]] and page["next_cursor"]
    assert [t["id"] for t in hub.iter_tasks(user=owner, page_size=1)] == [long["id"],
                                                                          first["id"]]
    assert hub.cancel(long["id"])["state"] == "cancelled"
    stack.wait_task(first["id"], {"succeeded"})
    with pytest.raises(Conflict):  # it already ended
        hub.cancel(first["id"])
    with pytest.raises(NotFound):
        hub.get_task("no-such-task")

    reader = user()  # not the owner: finished demo tasks notify their owner
    assert len(hub.notify(reader, "One", body="to one user", category="sdk")) == 1
    assert len(hub.notify([reader, user()], "Many", data={"n": 2})) == 2
    inbox = hub.inbox(reader, limit=1)
    assert inbox["items"][0]["title"] == "Many" and inbox["unread_count"] == 2
    assert inbox["next_cursor"] is not None
    assert hub.inbox(reader, after_id=inbox["next_cursor"])["items"][0]["title"] == "One"
    assert hub.inbox(reader, unread=True)["unread_count"] == 2

    channel = f"public:sdk-{uuid.uuid4().hex[:8]}"
    position = hub.publish(channel, "sdk.hello", {"hi": 1})
    assert position["channel"] == channel and position["offset"] == 1
    history = hub.history(channel)
    assert history["recovered"] and [p["data"] for p in history["publications"]] == [{"hi": 1}]
    assert hub.history(channel, since=1, epoch=position["epoch"])["publications"] == []

    token = hub.token(owner, channels=["custom:x"], ttl=60)
    assert token["token"].count(".") == 2 and token["expires_at"]


def test_field_errors_become_validation_failed(hub: HubClient) -> None:
    with pytest.raises(ValidationFailed) as bad_args:
        hub.submit("demo.count", {"steps": "many"})
    assert bad_args.value.status == 422 and "steps" in bad_args.value.errors["args"]
    with pytest.raises(ValidationFailed) as unknown:
        hub.submit("no.such.task")
    assert "name" in unknown.value.errors
    with pytest.raises(ValidationFailed) as reserved:
        hub.publish("public:x", "task.succeeded", {})
    assert "type" in reserved.value.errors
    with pytest.raises(ValidationFailed) as bad_user:
        hub.notify("has spaces", "title")
    assert "user" in bad_user.value.errors and bad_user.value.detail


def test_wrong_key_and_missing_scope(stack: Stack, narrow_keys: dict[str, str]) -> None:
    with pytest.raises(Unauthorized) as unknown:
        HubClient(stack.base_url, "hub_nope_not-a-real-key").get_task("x")
    assert unknown.value.status == 401 and unknown.value.title
    narrow = HubClient(stack.base_url, narrow_keys["tasks"])
    with pytest.raises(Forbidden):
        narrow.publish("public:x", "sdk.x")
    task = narrow.submit("demo.count", {"steps": 1, "delay": 0}, user=user())
    with pytest.raises(Forbidden) as no_tokens:  # watch mints a user JWT: `tokens` scope
        list(narrow.watch(task["id"], timeout=30))
    assert "tokens" in no_tokens.value.detail


def test_submit_and_watch_to_the_end(hub: HubClient) -> None:
    task = hub.submit("demo.count", {"steps": 3, "delay": 0.3}, user=user())
    events = list(hub.watch(task["id"], timeout=60))
    types = [event["type"] for event in events]
    assert types[0] in ("task.queued", "task.snapshot")
    assert "task.started" in types and "task.progress" in types
    assert types.count("task.succeeded") == 1 and types[-1] == "task.succeeded"
    assert events[-1]["data"]["result"] == {"counted": 3}
    assert contiguous(events) and all(e["channel"] == task["channel"] for e in events)


def test_watch_recovers_after_a_dropped_connection(hub: HubClient) -> None:
    task = hub.submit("demo.count", {"steps": 10, "delay": 0.25}, user=user())
    events: list[Publication] = []
    with hub.watch(task["id"], timeout=90) as watch:
        for event in watch:
            events.append(event)
            if event["type"] == "task.started":
                watch.drop_connection()
                time.sleep(1.0)  # the task publishes while nobody listens
    types = [event["type"] for event in events]
    assert watch.reconnects == 1
    assert [e["offset"] for e in events] == list(range(1, len(events) + 1))
    assert "task.snapshot" not in types and types.count("task.succeeded") == 1
    assert types.index("task.started") < types.index("task.progress")


def test_watch_a_task_that_already_ended(hub: HubClient, stack: Stack) -> None:
    task = hub.submit("demo.count", {"steps": 1, "delay": 0}, user=user())
    stack.wait_task(task["id"], {"succeeded"})
    events = list(hub.watch(task["id"], timeout=30))
    assert [e["type"] for e in events][0] == "task.queued"
    assert [e["type"] for e in events][-1] == "task.succeeded" and contiguous(events)

    # Trim the channel's history as HUB_HISTORY_SIZE does, keeping only the last publication:
    # the watch can only resynchronise from the snapshot, which says how the task ended.
    log = f"{stack.prefix}:ch:{task['channel']}:log"
    with redis.Redis.from_url(stack.redis_url) as conn:
        assert conn.ltrim(log, -1, -1) and conn.llen(log) == 1
    resynced = list(hub.watch(task["id"], timeout=30))
    assert len(resynced) == 1 and resynced[0]["type"] == "task.succeeded"
    assert resynced[0].get("snapshot") is True and resynced[0]["offset"] == events[-1]["offset"]
    assert resynced[0]["data"]["result"] == {"counted": 1}


def test_watch_an_ownerless_task_by_polling(hub: HubClient) -> None:
    task = hub.submit("demo.count", {"steps": 3, "delay": 0.2})
    assert task["user"] is None
    events = list(hub.watch(task["id"], timeout=60))
    types = [event["type"] for event in events]
    assert types[0] == "task.queued" and types.count("task.succeeded") == 1
    assert types[-1] == "task.succeeded" and contiguous(events)


def test_the_same_key_returns_the_same_thing(hub: HubClient) -> None:
    key = f"sdk-{uuid.uuid4()}"
    owner = user()
    first = hub.submit("demo.count", {"steps": 1, "delay": 0}, user=owner, idempotency_key=key)
    again = hub.submit("demo.count", {"steps": 1, "delay": 0}, user=owner, idempotency_key=key)
    assert again["id"] == first["id"]
    assert [t["id"] for t in hub.iter_tasks(user=owner)] == [first["id"]]
    ids = hub.notify(owner, "once", idempotency_key=key)
    assert hub.notify(owner, "once", idempotency_key=key) == ids
    assert [n["id"] for n in hub.inbox(owner)["items"] if n["title"] == "once"] == ids
    channel = f"public:sdk-{uuid.uuid4().hex[:8]}"
    position = hub.publish(channel, "sdk.once", 1, idempotency_key=key)
    assert hub.publish(channel, "sdk.once", 1, idempotency_key=key) == position
    assert len(hub.history(channel)["publications"]) == 1
