"""A Redis outage: REST answers 503, readiness goes red, everything reconnects by itself."""

from collections.abc import Iterator
from pathlib import Path

import pytest
import requests

from hub.embedded import EmbeddedRedis
from tests.support.stack import Stack, wait_until

pytestmark = pytest.mark.integration


@pytest.fixture
def outage_stack(tmp_path: Path) -> Iterator[tuple[Stack, EmbeddedRedis]]:
    server = EmbeddedRedis(tmp_path / "redis", persist=True)
    url = server.start()
    stack = Stack("eventlet", f"sqlite:///{tmp_path / 'hub.db'}", url, tmp_path / "stack",
                  beat=False)
    try:
        stack.start()
        yield stack, server
    finally:
        stack.stop()
        server.stop()


def test_rest_503_readiness_red_then_recovery(outage_stack: tuple[Stack, EmbeddedRedis]) -> None:
    stack, server = outage_stack
    client = stack.client("alice")
    first = client.call("subscribe", {"channel": "public:outage"})
    assert stack.post("/api/v1/publish", {"channel": "public:outage", "type": "o.msg",
                                          "data": 1}).status_code == 202
    client.wait_for(lambda c: len(c.of_type("o.msg")) == 1)

    server.stop()
    published = stack.post("/api/v1/publish", {"channel": "public:outage", "type": "o.msg",
                                               "data": 2})
    assert published.status_code == 503
    assert published.headers["Content-Type"] == "application/problem+json"
    assert published.json()["status"] == 503
    submitted = stack.post("/api/v1/tasks", {"name": "demo.count", "args": {"steps": 1}})
    assert submitted.status_code == 503
    def red() -> dict | None:
        response = requests.get(f"{stack.base_url}/readyz", timeout=10)
        return response.json() if response.status_code == 503 else None

    ready = wait_until(red, timeout=15, what="readiness to go red")
    assert ready["checks"]["redis"] is False
    assert stack.get("/healthz").status_code == 200

    server.start()  # same port, same data directory
    wait_until(lambda: requests.get(f"{stack.base_url}/readyz", timeout=10).status_code == 200,
               timeout=60, interval=0.5, what="readiness to come back")
    assert stack.post("/api/v1/publish", {"channel": "public:outage", "type": "o.msg",
                                          "data": 3}).status_code == 202
    try:
        client.wait_for(lambda c: len(c.of_type("o.msg")) == 2, timeout=20)
    except AssertionError:
        raise AssertionError(f"connected={client.sio.connected} events={client.events}\n"
                             f"web log:\n{stack.logs('web')}") from None
    assert [m["data"] for m in client.of_type("o.msg")] == [1, 3]
    rec = client.call("subscribe", {"channel": "public:outage",
                                    "since": {"offset": 1, "epoch": first["epoch"]}})
    assert rec["recovered"] and [p["data"] for p in rec["publications"]] == [3]
    task = stack.submit("alice", steps=1, delay=0)
    stack.wait_task(task["id"], {"succeeded"}, timeout=60)
