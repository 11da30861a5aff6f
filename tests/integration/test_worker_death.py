"""A worker that dies is noticed (task.stalled), its task redelivered (task.retrying with
reason worker_lost) and run to one end; a live worker's slow task is never run twice,
though it runs longer than the (short) visibility timeout. Real hub, workers and Redis."""

import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.support.stack import ROOT, LiveClient, Stack, own_stack, wait_until

pytestmark = pytest.mark.integration

FINAL = {"task.succeeded", "task.failed", "task.cancelled"}
SLOW = {"steps": 20, "delay": 0.5}  # 10 s: long enough to be killed mid-way
# Stall after 3 s without a beat (beats every second); redelivery 8 s after the last beat,
# so task.stalled is out well before the redelivered task starts.
DEATH_ENV = {"HUB_STALL_SECONDS": "3", "HUB_VISIBILITY_TIMEOUT": "8"}


def follow(client: LiveClient, task_id: str) -> str:
    """Subscribe to the task's channel; returns its epoch."""
    ack = client.call("subscribe", {"channel": f"task:{task_id}"})
    assert ack["ok"], ack
    return ack["epoch"]


def channel_history(client: LiveClient, task_id: str, epoch: str) -> list[dict[str, Any]]:
    """Everything the channel published, in offset order: recovered from 0 plus live."""
    channel = f"task:{task_id}"
    early = client.call("subscribe", {"channel": channel, "since": {"offset": 0, "epoch": epoch}})
    assert early["recovered"], early
    merged = {p["offset"]: p for p in early["publications"] + client.publications(channel)}
    return [merged[k] for k in sorted(merged)]


def lifecycle(pubs: list[dict[str, Any]]) -> list[str]:
    return [p["type"] for p in pubs if p["type"] != "task.progress"]


def wait_progress(client: LiveClient, task_id: str, at_least: int) -> None:
    client.wait_for(lambda c: any(p["type"] == "task.progress" and p["data"]["current"] >= at_least
                                  for p in c.publications(f"task:{task_id}")),
                    timeout=60, what=f"task {task_id} to reach step {at_least}")


def wait_end(client: LiveClient, task_id: str, timeout: float = 120,
             stack: Stack | None = None) -> None:
    try:
        client.wait_for(
            lambda c: any(p["type"] in FINAL for p in c.publications(f"task:{task_id}")),
            timeout=timeout, what=f"the end of {task_id}")
    except AssertionError as exc:
        seen = [p["type"] for p in client.publications(f"task:{task_id}")]
        logs = "" if stack is None else f"\nworker log:\n{stack.logs('worker')}"
        raise AssertionError(f"{exc}; seen {seen}{logs}") from exc


def pool_children(pid: int) -> list[int]:
    """The processes whose parent is `pid` (a prefork worker's pool), from /proc."""
    children = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue  # it exited while we looked
        if int(fields[1]) == pid:
            children.append(int(stat.parent.name))
    return children


# The heartbeat runs as a thread beside prefork's event loop, and as a greenlet in a gevent
# worker, whose consumer restores unacked messages on its own (synchronous) path.
@pytest.fixture(params=["prefork", "gevent"])
def death_stack(request: pytest.FixtureRequest, redis_url: str,
                tmp_path: Path) -> Iterator[Stack]:
    with own_stack(redis_url, tmp_path, 5, HUB_WORKER_POOL=request.param, **DEATH_ENV) as stack:
        yield stack


def test_a_killed_worker_is_told_stalled_then_redelivered_once(death_stack: Stack) -> None:
    stack = death_stack
    client = stack.client("carol")
    task = stack.submit("carol", **SLOW)
    epoch = follow(client, task["id"])
    wait_progress(client, task["id"], 3)
    stack.stop_role("worker", sig=signal.SIGKILL)  # the whole process group: main and pool
    stack.start_role("worker")
    wait_end(client, task["id"], stack=stack)
    pubs = channel_history(client, task["id"], epoch)
    assert lifecycle(pubs) == ["task.queued", "task.started", "task.stalled", "task.retrying",
                               "task.started", "task.succeeded"], lifecycle(pubs)
    stalled = next(p["data"] for p in pubs if p["type"] == "task.stalled")
    assert stalled["task_id"] == task["id"] and stalled["attempt"] == 1
    assert stalled["last_heartbeat"].endswith("Z")
    retrying = next(p["data"] for p in pubs if p["type"] == "task.retrying")
    assert retrying["reason"] == "worker_lost" and retrying["attempt"] == 1
    assert retrying["error"]["type"] == "WorkerLost" and retrying["eta"]
    # The owner hears of the stall on her own channel too, and of one end.
    client.wait_for(lambda c: any(p["channel"] == "user:carol" for p in c.of_type("task.stalled")))
    record = stack.wait_task(task["id"], {"succeeded"})
    assert record["attempts"] == 2 and record["result"] == {"counted": SLOW["steps"]}
    client.wait_for(lambda c: len(c.of_type("notification.created")) >= 1)
    assert len([p for p in client.of_type("task.succeeded") if p["channel"] == "user:carol"]) == 1
    assert len(client.of_type("notification.created")) == 1


@pytest.fixture
def one_child_stack(redis_url: str, tmp_path: Path) -> Iterator[Stack]:
    with own_stack(redis_url, tmp_path, 6, HUB_WORKER_CONCURRENCY="1", **DEATH_ENV) as stack:
        yield stack


def test_a_killed_pool_child_is_a_worker_lost_retry(one_child_stack: Stack) -> None:
    stack = one_child_stack
    client = stack.client("dave")
    task = stack.submit("dave", **SLOW)
    epoch = follow(client, task["id"])
    wait_progress(client, task["id"], 3)
    main = stack.processes["worker"].pid
    children = pool_children(main)
    assert len(children) == 1, children  # concurrency 1: the child running the task
    os.kill(children[0], signal.SIGKILL)
    wait_end(client, task["id"])
    pubs = channel_history(client, task["id"], epoch)
    kinds = [kind for kind in lifecycle(pubs) if kind != "task.stalled"]
    assert kinds == ["task.queued", "task.started", "task.retrying", "task.started",
                     "task.succeeded"], lifecycle(pubs)
    retrying = next(p["data"] for p in pubs if p["type"] == "task.retrying")
    assert retrying["reason"] == "worker_lost" and retrying["attempt"] == 1
    record = stack.wait_task(task["id"], {"succeeded"})
    assert record["attempts"] == 2
    assert stack.processes["worker"].poll() is None  # the worker itself lived on


@pytest.fixture
def short_visibility_stack(redis_url: str, tmp_path: Path) -> Iterator[Stack]:
    # The visibility timeout far below the task's run time, set explicitly.
    with own_stack(redis_url, tmp_path, 7, HUB_STALL_SECONDS="3",
                   HUB_VISIBILITY_TIMEOUT="3") as stack:
        yield stack


def start_second_worker(stack: Stack) -> subprocess.Popen[bytes]:
    """Another worker on the same queue: its start-up restore sweep, and its periodic ones,
    would put back any message older than the visibility timeout."""
    log = open(stack.workdir / "worker-2.log", "ab")  # noqa: SIM115 - closed with the process
    env = {**stack.env(), "HUB_LOG_LEVEL": "INFO"}
    process = subprocess.Popen([sys.executable, str(ROOT / "run.py"), "worker"],
                               cwd=stack.workdir, env=env, stdout=log,
                               stderr=subprocess.STDOUT, start_new_session=True)
    log.close()
    stack.processes["worker-2"] = process  # stopped with the stack
    return process


def test_a_slow_task_on_a_live_worker_runs_once(short_visibility_stack: Stack) -> None:
    stack = short_visibility_stack
    client = stack.client("erin")
    task = stack.submit("erin", steps=40, delay=0.5)  # 20 s, over six visibility timeouts
    epoch = follow(client, task["id"])
    wait_progress(client, task["id"], 8)  # 4 s in: its message is past the timeout already
    start_second_worker(stack)
    wait_until(lambda: "ready." in (stack.workdir / "worker-2.log").read_text(errors="replace"),
               timeout=60, what="the second worker to be ready")
    wait_end(client, task["id"])
    pubs = channel_history(client, task["id"], epoch)
    assert lifecycle(pubs) == ["task.queued", "task.started", "task.succeeded"], lifecycle(pubs)
    record = stack.get(f"/api/v1/tasks/{task['id']}").json()
    assert record["state"] == "succeeded" and record["attempts"] == 1
