"""A stalled Redis (SIGSTOP: connections accepted, never answered): bounded answers, no 500,
SQL-only reads keep working, and everything comes back after SIGCONT with nothing lost."""

import os
import signal
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import requests

from hub.embedded import EmbeddedRedis
from tests.support.stack import Stack, wait_until

pytestmark = pytest.mark.integration

# Long enough to tell a bounded answer from a hang; the measured figures go in the README.
HANG = 10
RATE = 20  # HUB_REST_RATE: the stack's own polling stays below it


@pytest.fixture(params=["eventlet", "gevent"])
def stall_stack(request: pytest.FixtureRequest,
                tmp_path: Path) -> Iterator[tuple[Stack, EmbeddedRedis]]:
    server = EmbeddedRedis(tmp_path / "redis", persist=True)
    url = server.start()
    stack = Stack(request.param, f"sqlite:///{tmp_path / 'hub.db'}", url, tmp_path / "stack",
                  beat=False, extra_env={"HUB_REST_RATE": str(RATE)})
    try:
        stack.start()
        yield stack, server
    finally:
        if server.process is not None and server.process.poll() is None:
            os.kill(server.process.pid, signal.SIGCONT)  # never leave a stopped Redis behind
        stack.stop()
        server.stop()


def timed(what: str, durations: dict[str, list[float]],
          call: Callable[[], requests.Response]) -> requests.Response:
    """Make the call, record how long it took; a hang fails the test through `HANG`."""
    started = time.monotonic()
    response = call()
    durations.setdefault(what, []).append(time.monotonic() - started)
    assert response.status_code < 500 or response.status_code == 503, \
        f"{what}: {response.status_code} {response.text}"
    return response


def burst(url: str, headers: dict[str, str]) -> list[int]:
    """More requests than the rate allows, back to back: whichever way they fall across a
    second boundary, one second gets more than RATE of them."""
    return [requests.get(url, headers=headers, timeout=HANG).status_code
            for _ in range(2 * RATE + 5)]


def test_stalled_redis_bounded_answers_then_recovery(
        stall_stack: tuple[Stack, EmbeddedRedis]) -> None:
    stack, server = stall_stack
    assert server.process is not None
    channel = "public:stall"
    headers = stack.headers()
    user_headers = {"Authorization": f"Bearer {stack.token('alice')}"}
    carol = {"Authorization": f"Bearer {stack.token('carol')}"}
    base = stack.base_url
    client = stack.client("alice")
    first = client.call("subscribe", {"channel": channel})
    assert stack.post("/api/v1/publish", {"channel": channel, "type": "s.msg",
                                          "data": 1}).status_code == 202
    client.wait_for(lambda c: len(c.of_type("s.msg")) == 1)
    task = stack.submit("alice", steps=1, delay=0)
    stack.wait_task(task["id"], {"succeeded"})
    assert stack.post("/api/v1/notifications", {"user": "alice", "title": "before"}) \
        .status_code == 201
    assert set(burst(f"{base}/api/v1/me/notifications", carol)) == {200, 429}

    durations: dict[str, list[float]] = {}
    acked = [1]
    os.kill(server.process.pid, signal.SIGSTOP)
    try:
        for attempt in range(3):  # the first call meets a fresh failure, later ones may not
            ready = timed("readyz", durations,
                          lambda: requests.get(f"{base}/readyz", timeout=HANG))
            assert ready.status_code == 503 and ready.json()["checks"]["redis"] is False
            published = timed("publish", durations, lambda n=attempt: requests.post(
                f"{base}/api/v1/publish", headers=headers, timeout=HANG,
                json={"channel": channel, "type": "s.msg", "data": 100 + n}))
            assert published.status_code == 503, published.text
            assert published.headers["Content-Type"] == "application/problem+json"
            submitted = timed("submit", durations, lambda: requests.post(
                f"{base}/api/v1/tasks", headers=headers, timeout=HANG,
                json={"name": "demo.count", "args": {"steps": 1}, "user": "alice"}))
            assert submitted.status_code == 503, submitted.text
            notified = timed("notify", durations, lambda: requests.post(
                f"{base}/api/v1/notifications", headers=headers, timeout=HANG,
                json={"user": "bob", "title": "during"}))
            assert notified.status_code == 503, notified.text
            # Reads that need only SQL keep working.
            got = timed("get task", durations, lambda: requests.get(
                f"{base}/api/v1/tasks/{task['id']}", headers=headers, timeout=HANG))
            assert got.status_code == 200 and got.json()["state"] == "succeeded"
            inbox = timed("service inbox", durations, lambda: requests.get(
                f"{base}/api/v1/notifications", params={"user": "alice"}, headers=headers,
                timeout=HANG))
            assert inbox.status_code == 200
            assert "before" in [item["title"] for item in inbox.json()["items"]]
            mine = timed("my inbox", durations, lambda: requests.get(
                f"{base}/api/v1/me/notifications", headers=user_headers, timeout=HANG))
            assert mine.status_code == 200
            assert "before" in [item["title"] for item in mine.json()["items"]]
            assert requests.get(f"{base}/healthz", timeout=HANG).status_code == 200
        # The REST rate limit still holds, counted in the hub process meanwhile.
        assert set(burst(f"{base}/api/v1/me/notifications", carol)) == {200, 429}
        started = time.monotonic()
        refused = client.call("subscribe", {"channel": "public:other"}, timeout=HANG)
        durations["socket subscribe"] = [time.monotonic() - started]
        assert refused["ok"] is False, refused
    finally:
        os.kill(server.process.pid, signal.SIGCONT)
        print("\nduring the stall (s):", {what: [round(d, 3) for d in took]
                                          for what, took in durations.items()})
    resumed = time.monotonic()

    wait_until(lambda: requests.get(f"{base}/readyz", timeout=HANG).status_code == 200,
               timeout=60, interval=0.1, what="readiness to come back after SIGCONT")
    print(f"ready again {time.monotonic() - resumed:.2f} s after SIGCONT")
    assert stack.post("/api/v1/publish", {"channel": channel, "type": "s.msg",
                                          "data": 2}).status_code == 202
    acked.append(2)
    client.wait_for(lambda c: 2 in [m["data"] for m in c.of_type("s.msg")], timeout=20)
    done = stack.submit("alice", steps=2, delay=0)
    stack.wait_task(done["id"], {"succeeded"}, timeout=60)

    # Nothing lost: what the client saw live plus what it recovers is the channel's history,
    # without a gap, holding every publication that was acknowledged. (A publication that
    # timed out may still have reached Redis: a 503 after a timeout is an unknown outcome.)
    seen = {m["offset"]: m for m in client.publications(channel)}
    recovery = client.call("subscribe", {"channel": channel,
                                         "since": {"offset": 1, "epoch": first["epoch"]}})
    assert recovery["ok"] and recovery["recovered"], recovery
    seen.update({m["offset"]: m for m in recovery["publications"]})
    offsets = sorted(seen)
    assert offsets == list(range(1, offsets[-1] + 1))
    data = [seen[offset]["data"] for offset in offsets]
    assert [value for value in data if value in acked] == acked, data
    assert set(data) - set(acked) <= {100, 101, 102}, data
