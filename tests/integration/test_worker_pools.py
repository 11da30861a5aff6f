"""The worker pools for tasks that mostly wait (HUB_WORKER_POOL=threads or gevent): a burst
runs side by side, every task end to end, and its owner hears every end."""

import os
from pathlib import Path

import pytest

from tests.integration.conftest import postgres_database
from tests.support.stack import own_stack

pytestmark = pytest.mark.integration

BURST = 20
STEPS, DELAY = 3, 1.0  # 3 s a task: far longer than starting a burst of 20 takes


# psycopg 3 waits cooperatively once it sees gevent's monkey-patching: PostgreSQL too.
CASES = [("threads", "sqlite", 13), ("gevent", "sqlite", 14)] + (
    [("gevent", "postgresql", 15)] if os.environ.get("TEST_DATABASE_URL") else [])


@pytest.mark.parametrize(("pool", "database", "db_index"), CASES,
                         ids=[f"{pool}-{database}" for pool, database, _ in CASES])
def test_a_burst_of_waiting_tasks_runs_side_by_side(redis_url: str, tmp_path: Path, pool: str,
                                                    database: str, db_index: int) -> None:
    databases = postgres_database() if database == "postgresql" else None
    try:
        run_bursts(redis_url, tmp_path, pool, db_index, next(databases) if databases else None)
    finally:
        if databases:
            next(databases, None)


def run_bursts(redis_url: str, tmp_path: Path, pool: str, db_index: int,
               database_url: str | None) -> None:
    with own_stack(redis_url, tmp_path, db_index, database_url, HUB_WORKER_POOL=pool,
                   HUB_WORKER_CONCURRENCY=str(BURST)) as stack:
        client = stack.client("pooled")
        # Two bursts back to back: the second starts while the first one's acknowledgements
        # may still be pending in the worker (see run.py's WORKER_POOLS).
        for burst in (1, 2):
            ids = [stack.submit("pooled", steps=STEPS, delay=DELAY)["id"] for _ in range(BURST)]
            client.wait_for(lambda c, n=burst: len(c.of_type("task.succeeded")) >= n * BURST,
                            timeout=60, what=f"burst {burst} to succeed")
            records = [stack.get(f"/api/v1/tasks/{task_id}").json() for task_id in ids]
            assert {r["state"] for r in records} == {"succeeded"}
            assert all(r["result"] == {"counted": STEPS} and r["attempts"] == 1 for r in records)
            # Side by side, not `pool`-default two at a time: all had started before any ended.
            assert max(r["started_at"] for r in records) < min(r["finished_at"] for r in records)
        ends = client.of_type("task.succeeded")
        assert len({e["data"]["id"] for e in ends}) == 2 * BURST
        # demo.count notifies its owner when it ends: one notification per task, none twice.
        client.wait_for(lambda c: len(c.of_type("notification.created")) >= 2 * BURST)
        notified = {n["data"]["notification"]["data"]["task_id"]
                    for n in client.of_type("notification.created")}
        assert notified == {e["data"]["id"] for e in ends}
