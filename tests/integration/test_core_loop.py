"""REST -> Celery -> live progress over a real Socket.IO connection, with recovery."""

import time
from typing import Any

import pytest

from tests.support.stack import LiveClient, Stack, wait_until

pytestmark = pytest.mark.integration

FINAL = {"task.succeeded", "task.failed", "task.cancelled"}


def types(pubs: list[dict[str, Any]]) -> list[str]:
    return [p["type"] for p in pubs]


def assert_contiguous(pubs: list[dict[str, Any]], start: int | None = None) -> None:
    offsets = [p["offset"] for p in pubs]
    first = offsets[0] if start is None else start
    assert offsets == list(range(first, first + len(offsets))), offsets
    assert len({p["epoch"] for p in pubs}) == 1


def follow(client: LiveClient, task_id: str) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """Subscribe to a task, recover what it published before the subscription, wait for the end.

    Returns the first ack and the whole channel as this client saw it, in order.
    """
    channel = f"task:{task_id}"
    first = client.call("subscribe", {"channel": channel})
    assert first["ok"], first
    early = client.call("subscribe", {"channel": channel,
                                      "since": {"offset": 0, "epoch": first["epoch"]}})
    assert early["recovered"], early
    client.wait_for(lambda c: any(p["type"] in FINAL for p in c.publications(channel)),
                    what=f"the end of {task_id}")
    live = client.publications(channel)
    merged = {p["offset"]: p for p in early["publications"] + live}
    return first, [merged[k] for k in sorted(merged)]


def test_task_runs_from_queued_to_succeeded_with_progress(fresh_clients: Stack) -> None:
    stack = fresh_clients
    client = stack.client("alice")
    task = stack.submit("alice", steps=8, delay=0.15)
    assert task["state"] == "queued" and task["user"] == "alice"
    _, pubs = follow(client, task["id"])
    assert_contiguous(pubs, start=1)
    kinds = types(pubs)
    assert kinds[0] == "task.queued" and kinds[1] == "task.started"
    assert kinds[-1] == "task.succeeded"
    assert set(kinds[2:-1]) == {"task.progress"}
    progress = [p["data"] for p in pubs if p["type"] == "task.progress"]
    assert [p["current"] for p in progress] == sorted(p["current"] for p in progress)
    assert progress[-1] == {"task_id": task["id"], "current": 8, "total": 8, "percent": 100.0,
                            "message": "step 8 of 8"}
    final = pubs[-1]
    assert final["data"]["result"] == {"counted": 8} and final["data"]["state"] == "succeeded"
    for pub in pubs:
        assert set(pub) == {"channel", "offset", "epoch", "type", "data", "ts", "trace_id"}
        assert pub["channel"] == f"task:{task['id']}" and pub["ts"].endswith("Z")
    # The end is also told on the owner's personal channel.
    client.wait_for(lambda c: c.of_type("task.succeeded") and any(
        p["channel"] == "user:alice" for p in c.of_type("task.succeeded")))
    record = stack.get(f"/api/v1/tasks/{task['id']}").json()
    assert record["state"] == "succeeded" and record["progress"]["percent"] == 100.0
    assert record["attempts"] == 1 and record["started_at"] and record["finished_at"]


def test_progress_is_coalesced_under_a_tight_loop(fresh_clients: Stack) -> None:
    stack = fresh_clients
    client = stack.client("alice")
    task = stack.submit("alice", steps=20000, delay=0)
    _, pubs = follow(client, task["id"])
    progress = [p for p in pubs if p["type"] == "task.progress"]
    assert 1 <= len(progress) < 2000  # HUB_PROGRESS_HZ=10 per second, not one per step
    assert progress[-1]["data"]["current"] == 20000


def test_late_subscriber_gets_the_final_state_as_snapshot(fresh_clients: Stack) -> None:
    stack = fresh_clients
    task = stack.submit("alice", steps=2, delay=0)
    stack.wait_task(task["id"], {"succeeded"})
    ack = stack.client("alice").call("subscribe", {"channel": f"task:{task['id']}"})
    assert ack["ok"] and ack["snapshot"]["state"] == "succeeded"
    assert ack["snapshot"]["result"] == {"counted": 2}
    assert ack["offset"] >= 3


def test_recovery_after_a_disconnect_mid_task(fresh_clients: Stack) -> None:
    stack = fresh_clients
    channel_of = "task:{}".format
    first_client = stack.client("alice")
    task = stack.submit("alice", steps=12, delay=0.25)
    channel = channel_of(task["id"])
    ack = first_client.call("subscribe", {"channel": channel})
    first_client.wait_for(lambda c: len([p for p in c.publications(channel)
                                         if p["type"] == "task.progress"]) >= 2)
    first_client.close()
    seen = first_client.publications(channel)
    last = seen[-1]
    time.sleep(1.0)  # the task moves on while nobody listens
    second = stack.client("alice")
    rec = second.call("subscribe", {"channel": channel,
                                    "since": {"offset": last["offset"], "epoch": ack["epoch"]}})
    assert rec["recovered"] is True
    assert rec["publications"], "the task published while we were away"
    assert rec["publications"][0]["offset"] == last["offset"] + 1
    second.wait_for(lambda c: any(p["type"] == "task.succeeded" for p in c.publications(channel))
                    or any(p["type"] == "task.succeeded" for p in rec["publications"]))
    merged = {p["offset"]: p for p in seen + rec["publications"] + second.publications(channel)}
    ordered = [merged[k] for k in sorted(merged)]
    assert_contiguous(ordered, start=ordered[0]["offset"])
    assert ordered[-1]["type"] == "task.succeeded"
    # Nothing we got live after recovery repeats what recovery returned.
    recovered = {p["offset"] for p in rec["publications"]}
    live_after = [p for p in second.publications(channel) if p["offset"] in recovered]
    assert all(merged[p["offset"]]["trace_id"] == p["trace_id"] for p in live_after)


def test_recovery_refused_for_another_epoch(fresh_clients: Stack) -> None:
    stack = fresh_clients
    task = stack.submit("alice", steps=1, delay=0)
    stack.wait_task(task["id"], {"succeeded"})
    ack = stack.client("alice").call("subscribe", {"channel": f"task:{task['id']}",
                                                   "since": {"offset": 1, "epoch": "gone"}})
    assert ack["ok"] and ack["recovered"] is False and ack["publications"] == []
    assert ack["snapshot"]["state"] == "succeeded"


def test_failing_task_publishes_task_failed_with_the_error(fresh_clients: Stack) -> None:
    stack = fresh_clients
    client = stack.client("bob")
    task = stack.submit("bob", steps=5, delay=0.05, fail_at=3)
    _, pubs = follow(client, task["id"])
    assert pubs[-1]["type"] == "task.failed"
    error = pubs[-1]["data"]["error"]
    assert error["type"] == "RuntimeError" and "step 3" in error["message"]
    record = stack.get(f"/api/v1/tasks/{task['id']}").json()
    assert record["state"] == "failed" and record["error"] == error


def test_cancel_a_running_task(fresh_clients: Stack) -> None:
    stack = fresh_clients
    client = stack.client("carol")
    task = stack.submit("carol", steps=100, delay=0.1)
    channel = f"task:{task['id']}"
    client.call("subscribe", {"channel": channel})
    client.wait_for(lambda c: any(p["type"] == "task.progress" for p in c.publications(channel)))
    response = stack.post(f"/api/v1/tasks/{task['id']}/cancel")
    assert response.status_code == 202 and response.json()["state"] == "cancelled"
    client.wait_for(lambda c: any(p["type"] == "task.cancelled" for p in c.publications(channel)))
    time.sleep(1.0)  # a terminated task publishes nothing more
    pubs = client.publications(channel)
    assert pubs[-1]["type"] == "task.cancelled"
    assert stack.get(f"/api/v1/tasks/{task['id']}").json()["state"] == "cancelled"
    assert stack.post(f"/api/v1/tasks/{task['id']}/cancel").status_code == 409


def test_idempotent_resubmission_returns_the_first_task(fresh_clients: Stack) -> None:
    stack = fresh_clients
    body = {"name": "demo.count", "args": {"steps": 1, "delay": 0}, "user": "dave",
            "idempotency_key": f"key-{time.time_ns()}"}
    first = stack.post("/api/v1/tasks", body)
    second = stack.post("/api/v1/tasks", body)
    assert first.status_code == 202 and second.status_code == 200
    assert first.json()["id"] == second.json()["id"]
    stack.wait_task(first.json()["id"], {"succeeded"})
    listed = stack.get("/api/v1/tasks", params={"user": "dave", "limit": 100}).json()["items"]
    assert [t["id"] for t in listed].count(first.json()["id"]) == 1


def test_someone_elses_task_channel_is_forbidden(fresh_clients: Stack) -> None:
    stack = fresh_clients
    task = stack.submit("alice", steps=1, delay=0)
    ack = stack.client("mallory").call("subscribe", {"channel": f"task:{task['id']}"})
    assert ack == {"ok": False, "error": {"code": "forbidden",
                                          "message": "this task belongs to another user"}}


def test_bad_tokens_are_refused_at_connect(fresh_clients: Stack) -> None:
    import socketio

    for auth in ({}, {"token": "nonsense"}, {"token": stack_token_for_other_secret()}):
        client = fresh_clients.client("x", connect=False, **auth) if auth else \
            LiveClient(fresh_clients.base_url, {})
        with pytest.raises(socketio.exceptions.ConnectionError):
            client.connect()
        assert client.connect_error["data"]["code"] == "unauthorized", client.connect_error


def stack_token_for_other_secret() -> str:
    from events import tokens

    return tokens.issue("some-other-secret-that-is-long-enough-for-hs256", "x", 60)[0]


def test_connect_since_replays_the_personal_channel(fresh_clients: Stack) -> None:
    stack = fresh_clients
    user = f"erin{time.time_ns()}"
    first = stack.client(user)
    position = first.call("subscribe", {"channel": f"user:{user}"})
    first.close()
    for n in range(3):
        assert stack.post("/api/v1/publish", {"channel": f"user:{user}", "type": "custom.note",
                                              "data": {"n": n}}).status_code == 202
    client = stack.client(user, since={"offset": position["offset"], "epoch": position["epoch"]})
    client.wait_for(lambda c: len(c.of_type("custom.note")) == 3)
    stack.post("/api/v1/publish", {"channel": f"user:{user}", "type": "custom.note",
                                   "data": {"n": 3}})
    client.wait_for(lambda c: len(c.of_type("custom.note")) == 4)
    notes = client.of_type("custom.note")
    assert [n["data"]["n"] for n in notes] == [0, 1, 2, 3]
    assert_contiguous(notes, start=position["offset"] + 1)


def test_schedule_runs_are_published_and_listed(fresh_clients: Stack) -> None:
    stack = fresh_clients
    client = stack.client("alice")
    assert client.call("subscribe", {"channel": "schedule:demo-heartbeat"})["ok"]
    client.wait_for(lambda c: c.of_type("schedule.ran"), timeout=30)
    ran = client.of_type("schedule.ran")[0]["data"]
    assert ran["entry"] == "demo-heartbeat" and ran["state"] == "succeeded"
    assert ran["result"] == {"counted": 3}
    entries = {e["entry"]: e for e in stack.get("/api/v1/schedules").json()}
    entry = entries["demo-heartbeat"]
    assert entry["task"] == "demo.count" and entry["every_seconds"] == 1.0
    assert entry["last_run"] and entry["next_run"] and entry["last_state"] == "succeeded"


def test_token_expiry_warns_then_disconnects_unless_refreshed(fresh_clients: Stack) -> None:
    stack = fresh_clients
    short = stack.client("frank", token=stack.token("frank", ttl=3))
    kept = stack.client("frank", token=stack.token("frank", ttl=3))
    kept.wait_for(lambda c: c.of_type("token.expiring"))
    assert kept.call("refresh", {"token": stack.token("frank", ttl=600)})["ok"]
    wait_until(lambda: not short.sio.connected, timeout=15, what="the expired connection to drop")
    assert short.of_type("token.expiring")
    time.sleep(1.0)
    assert kept.sio.connected


def test_readiness_and_metrics(fresh_clients: Stack) -> None:
    ready = fresh_clients.get("/readyz").json()
    assert ready == {"status": "ready",
                     "checks": {"database": True, "redis": True, "listener": True}}
    assert "hub_connections" in fresh_clients.get("/metrics").text
