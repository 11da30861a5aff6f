"""Durable notifications against the real stack: fan-out, offline inbox, recovery, broadcast."""

import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from tests.support.stack import Stack, own_stack, wait_until

pytestmark = pytest.mark.integration


def unique(prefix: str) -> str:
    return f"{prefix}{time.time_ns() % 10**12}"


def notify(stack: Stack, **body: Any) -> list[int]:
    response = stack.post("/api/v1/notifications", {"title": "hello", **body})
    assert response.status_code == 201, response.text
    return response.json()["ids"]


def test_online_users_get_it_once_offline_users_find_it(fresh_clients: Stack) -> None:
    stack = fresh_clients
    users = [unique(f"n{i}-") for i in range(200)]
    online = {user: stack.client(user) for user in users[:150]}
    ids = notify(stack, users=users, body="fan-out", idempotency_key=unique("k"))
    assert len(set(ids)) == 200
    for user, client in online.items():
        client.wait_for(lambda c: c.of_type("notification.created"), timeout=30,
                        what=f"{user}'s notification")
    time.sleep(0.5)
    for user, client in online.items():
        created = client.of_type("notification.created")
        assert len(created) == 1, (user, created)
        assert created[0]["data"]["notification"]["user"] == user
        assert created[0]["data"]["unread_count"] == 1
    for user in users[150:]:
        inbox = stack.get("/api/v1/notifications", params={"user": user}).json()
        assert [item["body"] for item in inbox["items"]] == ["fan-out"]
        assert inbox["unread_count"] == 1


def test_recovery_of_100_missed_notifications_in_order(fresh_clients: Stack) -> None:
    stack = fresh_clients
    user = unique("rec")
    first = stack.client(user)
    position = first.call("subscribe", {"channel": f"user:{user}"})
    first.close()
    for n in range(100):
        notify(stack, user=user, body=str(n))
    back = stack.client(user, since={"offset": position["offset"], "epoch": position["epoch"]})
    back.wait_for(lambda c: len(c.of_type("notification.created")) >= 100, timeout=30)
    notify(stack, user=user, body="live")
    back.wait_for(lambda c: len(c.of_type("notification.created")) == 101)
    created = back.of_type("notification.created")
    assert [e["data"]["notification"]["body"] for e in created] == \
        [str(n) for n in range(100)] + ["live"]
    assert [e["offset"] for e in created] == list(range(position["offset"] + 1,
                                                       position["offset"] + 102))
    assert [e["data"]["unread_count"] for e in created] == list(range(1, 102))


def test_read_state_syncs_across_tabs(fresh_clients: Stack) -> None:
    stack = fresh_clients
    user = unique("tabs")
    tab1, tab2 = stack.client(user), stack.client(user)
    ids = notify(stack, user=user) + notify(stack, user=user)
    tab2.wait_for(lambda c: len(c.of_type("notification.created")) == 2)
    assert tab1.call("notifications.read", {"ids": [ids[0]]}) == {"ok": True, "unread_count": 1}
    tab2.wait_for(lambda c: c.of_type("notification.read"))
    assert tab2.of_type("notification.read")[0]["data"]["unread_count"] == 1
    token = stack.token(user)
    response = stack.post("/api/v1/me/notifications/read", {"all": True}, key=token)
    assert response.json() == {"unread_count": 0}
    tab1.wait_for(lambda c: len(c.of_type("notification.read")) == 2)


def test_notify_on_finish_drops_a_notification(fresh_clients: Stack) -> None:
    stack = fresh_clients
    user = unique("owner")
    task = stack.submit(user, steps=1, delay=0)
    stack.wait_task(task["id"], {"succeeded"})
    inbox = wait_until(lambda: stack.get("/api/v1/notifications",
                                         params={"user": user}).json()["items"], timeout=10)
    assert inbox[0]["title"] == "demo.count succeeded"
    assert inbox[0]["data"] == {"task_id": task["id"], "state": "succeeded"}


def test_digest_summarises_old_unread_once(fresh_clients: Stack) -> None:
    stack = fresh_clients
    user = unique("dig")
    notify(stack, user=user)
    notify(stack, user=user)

    def run_digest() -> dict[str, Any]:
        created = stack.post("/api/v1/tasks", {"name": "notifications.digest",
                                               "args": {"older_than_hours": 0}})
        assert created.status_code == 202, created.text
        return stack.wait_task(created.json()["id"], {"succeeded"})

    run_digest()
    items = stack.get("/api/v1/notifications", params={"user": user}).json()["items"]
    digests = [i for i in items if i["category"] == "digest"]
    assert [d["title"] for d in digests] == ["You have 2 unread notifications"]
    run_digest()
    items = stack.get("/api/v1/notifications", params={"user": user}).json()["items"]
    assert len([i for i in items if i["category"] == "digest"]) == 1


def test_digest_and_cleanup_run_on_the_beat_schedule(fresh_clients: Stack) -> None:
    stack = fresh_clients
    client = stack.client("watcher")
    for entry in ("notifications-digest", "hub-cleanup"):
        assert client.call("subscribe", {"channel": f"schedule:{entry}"})["ok"]
    client.wait_for(lambda c: {e["data"]["entry"] for e in c.of_type("schedule.ran")}
                    >= {"notifications-digest", "hub-cleanup"}, timeout=30)
    entries = {e["entry"]: e for e in stack.get("/api/v1/schedules").json()}
    for name in ("notifications-digest", "hub-cleanup"):
        assert entries[name]["last_state"] == "succeeded" and entries[name]["last_run"]
    cleanup = next(e for e in client.of_type("schedule.ran") if e["data"]["entry"] == "hub-cleanup")
    assert set(cleanup["data"]["result"]) == {"notifications", "tasks", "schedule_runs"}


# -- profiles with their own stack ------------------------------------------------------


@pytest.fixture
def tiny_history_stack(redis_url: str, tmp_path: Path) -> Iterator[Stack]:
    with own_stack(redis_url, tmp_path, 10, HUB_HISTORY_SIZE="10") as stack:
        yield stack


def test_tiny_history_falls_back_to_the_inbox(tiny_history_stack: Stack) -> None:
    stack = tiny_history_stack
    user = unique("tiny")
    notify(stack, user=user, body="seen")
    client = stack.client(user)
    position = client.call("subscribe", {"channel": f"user:{user}"})
    seen = stack.get("/api/v1/notifications", params={"user": user}).json()["items"][0]["id"]
    client.close()
    for n in range(30):
        notify(stack, user=user, body=str(n))
    back = stack.client(user)
    rec = back.call("subscribe", {"channel": f"user:{user}",
                                  "since": {"offset": position["offset"],
                                            "epoch": position["epoch"]}})
    assert rec["recovered"] is False and rec["publications"] == []
    # The client fills the gap from the inbox, newer than what it had.
    page = stack.get("/api/v1/me/notifications", key=stack.token(user),
                     params={"since_id": seen, "limit": 100}).json()
    missed = page["items"]
    assert [int(item["body"]) for item in reversed(missed)] == list(range(30))


@pytest.fixture
def short_visibility_stack(redis_url: str, tmp_path: Path) -> Iterator[Stack]:
    with own_stack(redis_url, tmp_path, 11, HUB_VISIBILITY_TIMEOUT="5") as stack:
        yield stack


def test_broadcast_survives_a_sigkilled_worker(short_visibility_stack: Stack) -> None:
    import signal

    stack = short_visibility_stack
    users = [f"b{n}" for n in range(10_000)]
    created = stack.post("/api/v1/tasks", {"name": "notifications.broadcast", "args": {
        "users": users, "title": "all hands", "batch_size": 250}})
    assert created.status_code == 202, created.text
    task_id = created.json()["id"]
    wait_until(lambda: (stack.get(f"/api/v1/tasks/{task_id}").json()["progress"]["current"]
                        or 0) >= 1000, timeout=60, interval=0.02, what="a few batches")
    stack.stop_role("worker", signal.SIGKILL)
    partial = stack.get(f"/api/v1/tasks/{task_id}").json()
    assert partial["state"] == "started" and partial["progress"]["current"] < 10_000
    stack.start_role("worker")
    record = stack.wait_task(task_id, {"succeeded", "failed"}, timeout=120)
    assert record["state"] == "succeeded", record
    assert record["attempts"] == 2 and record["result"] == {"recipients": 10_000, "batches": 40}
    engine = sa.create_engine(stack.database_url)
    with engine.connect() as conn:
        rows = conn.execute(sa.text(
            "SELECT user, count(*) FROM notifications WHERE idempotency_key LIKE :key "
            "GROUP BY user"), {"key": f"broadcast:{task_id}:%"}).all()
    engine.dispose()
    per_user = Counter({user: count for user, count in rows})
    assert len(per_user) == 10_000 and set(per_user.values()) == {1}
