"""hub_client's retries, idempotency keys and typed errors against a real local HTTP server.

The server is http.server on a free port answering from a script, so requests, urllib3 and
the sockets are real; only Hub is replaced. Waits are recorded instead of slept.
"""

import json
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
from hub_client import (
    BadRequest,
    HubClient,
    HubError,
    NotFound,
    RateLimited,
    TransportError,
    Unavailable,
    ValidationFailed,
)

Reply = tuple[int, Any, dict[str, str]]
Action = Reply | str | Callable[["Seen"], Reply | str]


@dataclass
class Seen:
    method: str
    path: str
    body: Any
    headers: dict[str, str]


@dataclass
class Script:
    """What the fake hub answers, in order, and what it was asked."""

    actions: list[Action] = field(default_factory=list)
    seen: list[Seen] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def next(self, request: Seen) -> Reply | str:
        with self.lock:
            self.seen.append(request)
            action = self.actions.pop(0) if self.actions else (500, {"title": "unscripted"}, {})
        return action(request) if callable(action) else action


def handler_for(script: Script) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *_: Any) -> None:
            pass

        def answer(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            raw = self.rfile.read(length) if length else b""
            seen = Seen(self.command, self.path, json.loads(raw) if raw else None,
                        dict(self.headers.items()))
            action = script.next(seen)
            if action == "drop":  # the connection breaks before any answer
                self.close_connection = True
                return
            if isinstance(action, str) and action.startswith("sleep:"):
                time.sleep(float(action.split(":")[1]))
                self.close_connection = True
                return
            status, body, headers = action  # type: ignore[misc]
            data = body.encode() if isinstance(body, str) else json.dumps(body).encode()
            try:
                self.send_response(status)
                kind = "application/problem+json" if status >= 400 else "application/json"
                self.send_header("Content-Type", headers.pop("Content-Type", kind))
                self.send_header("Content-Length", str(len(data)))
                for name, value in headers.items():
                    self.send_header(name, value)
                self.end_headers()
                self.wfile.write(data)
            except OSError:
                pass  # the client gave up on this attempt

        do_GET = do_POST = answer

    return Handler


@pytest.fixture
def fake() -> Iterator[tuple[Script, str]]:
    script = Script()
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler_for(script))
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield script, f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


def client(url: str, waits: list[float], **kw: Any) -> HubClient:
    hub = HubClient(url, "hub_test_key", **{"timeout": 2.0, "backoff": 0.5, **kw})
    hub.sleep = waits.append
    return hub


def task(task_id: str = "t1", key: str | None = None) -> dict[str, Any]:
    return {"id": task_id, "name": "demo.count", "state": "queued", "user": None,
            "args": {}, "channel": f"task:{task_id}", "key": key}


def problem(status: int, detail: str, errors: dict[str, Any] | None = None) -> dict[str, Any]:
    body: dict[str, Any] = {"type": "about:blank", "title": "T", "status": status,
                            "detail": detail}
    if errors:
        body["errors"] = errors
    return body


def test_a_retried_submit_reuses_one_key_and_creates_one_task(
        fake: tuple[Script, str]) -> None:
    script, url = fake
    created: dict[str, dict[str, Any]] = {}

    def create_then_break(request: Seen) -> Reply | str:
        """Hub stores the task but the answer is lost (a proxy resets the connection)."""
        key = request.body["idempotency_key"]
        created.setdefault(key, task(f"t{len(created) + 1}", key))
        return "drop"

    def create(request: Seen) -> Reply:
        key = request.body["idempotency_key"]
        first = key not in created
        record = created.setdefault(key, task(f"t{len(created) + 1}", key))
        return (202 if first else 200), record, {}

    script.actions = [create_then_break, (503, problem(503, "busy"), {"Retry-After": "0"}),
                      create]
    waits: list[float] = []
    record = client(url, waits).submit("demo.count", {"steps": 1})
    keys = [seen.body["idempotency_key"] for seen in script.seen]
    assert len(keys) == 3 and len(set(keys)) == 1
    assert [seen.headers["Idempotency-Key"] for seen in script.seen] == keys
    assert len(created) == 1 and record["id"] == "t1"
    assert all(seen.headers["Authorization"] == "Bearer hub_test_key" for seen in script.seen)
    assert waits[1] == 0  # the 503's Retry-After


def test_each_call_has_its_own_key_unless_the_caller_gives_one(
        fake: tuple[Script, str]) -> None:
    script, url = fake
    script.actions = [(202, task(), {}), (202, task(), {}), (202, task(), {}),
                      (201, {"ids": [1]}, {}), (202, {"channel": "c", "offset": 1,
                                                     "epoch": "e"}, {})]
    hub = client(url, [])
    hub.submit("demo.count")
    hub.submit("demo.count")
    hub.submit("demo.count", idempotency_key="order-42")
    hub.notify("alice", "hi", idempotency_key="order-42")
    hub.publish("c", "custom.thing", {"a": 1}, idempotency_key="order-42")
    keys = [seen.body["idempotency_key"] for seen in script.seen]
    assert keys[0] != keys[1]
    assert keys[2:] == ["order-42"] * 3


def test_notify_retries_after_a_timeout_with_the_same_key(fake: tuple[Script, str]) -> None:
    script, url = fake
    script.actions = ["sleep:1.0", (201, {"ids": [7, 8]}, {})]
    ids = client(url, [], timeout=0.3).notify(["alice", "bob"], "Hello", body="b")
    assert ids == [7, 8]
    first, second = (seen.body for seen in script.seen)
    assert first == second and first["users"] == ["alice", "bob"] and "user" not in first


def test_429_waits_for_retry_after_then_backoff_grows(fake: tuple[Script, str]) -> None:
    script, url = fake
    script.actions = [(429, problem(429, "slow down"), {"Retry-After": "7"}),
                      (502, "<html>bad gateway</html>", {"Content-Type": "text/html"}),
                      (504, "", {}), (200, task(), {})]
    waits: list[float] = []
    assert client(url, waits).get_task("t1")["id"] == "t1"
    assert waits[0] == 7
    assert 0.5 * 0.5 * 2 <= waits[1] <= 0.5 * 2  # attempt 1: backoff * 2, jittered down
    assert 0.5 * 0.5 * 4 <= waits[2] <= 0.5 * 4


def test_retries_run_out_into_typed_errors(fake: tuple[Script, str]) -> None:
    script, url = fake
    script.actions = [(503, problem(503, "redis down"), {"Retry-After": "1"})] * 3
    with pytest.raises(Unavailable) as caught:
        client(url, [], retries=2).get_task("t1")
    assert caught.value.status == 503 and caught.value.detail == "redis down"
    assert caught.value.retry_after == 1 and len(script.seen) == 3

    script.seen.clear()
    script.actions = [(429, problem(429, "too many"), {"Retry-After": "3"})]
    with pytest.raises(RateLimited) as limited:
        client(url, [], retries=0).publish("c", "x")
    assert limited.value.retry_after == 3 and len(script.seen) == 1

    script.seen.clear()
    script.actions = [(502, "<html>bad gateway</html>", {"Content-Type": "text/html"})] * 2
    with pytest.raises(HubError) as gateway:
        client(url, [], retries=1).schedules()
    assert type(gateway.value) is HubError and gateway.value.status == 502


def test_client_errors_are_not_retried(fake: tuple[Script, str]) -> None:
    script, url = fake
    fields = {"args": {"steps": ["Not a valid integer."]}}
    script.actions = [
        (422, problem(422, "invalid task arguments", fields), {"X-Request-Id": "r-1"}),
        (404, problem(404, "no task nope"), {}),
        (400, problem(400, "bad json", {"json": ["Invalid JSON body."]}), {}),
    ]
    hub = client(url, [])
    with pytest.raises(ValidationFailed) as invalid:
        hub.submit("demo.count", {"steps": "x"})
    assert invalid.value.errors == fields and invalid.value.request_id == "r-1"
    with pytest.raises(NotFound):
        hub.get_task("nope")
    with pytest.raises(BadRequest) as bad:
        hub.task_types()
    assert bad.value.errors == {"json": ["Invalid JSON body."]}
    assert len(script.seen) == 3


def test_a_publish_in_progress_conflict_is_retried(fake: tuple[Script, str]) -> None:
    script, url = fake
    position = {"channel": "c", "offset": 3, "epoch": "e"}
    script.actions = [(409, problem(409, "in progress; retry"), {}), (202, position, {})]
    assert client(url, []).publish("c", "custom.x", [1]) == position
    assert script.seen[0].body == script.seen[1].body


def test_cancel_whose_first_attempt_got_through(fake: tuple[Script, str]) -> None:
    script, url = fake
    cancelled = {**task(), "state": "cancelled"}
    script.actions = ["drop", (409, problem(409, "task t1 already ended (cancelled)"), {}),
                      (200, cancelled, {})]
    assert client(url, []).cancel("t1")["state"] == "cancelled"
    assert [seen.method for seen in script.seen] == ["POST", "POST", "GET"]


def test_iter_tasks_follows_the_cursor(fake: tuple[Script, str]) -> None:
    script, url = fake
    script.actions = [(200, {"items": [task("a"), task("b")], "next_cursor": 5}, {}),
                      (200, {"items": [task("c")], "next_cursor": None}, {})]
    ids = [t["id"] for t in client(url, []).iter_tasks(state="queued", page_size=2)]
    assert ids == ["a", "b", "c"]
    assert script.seen[0].path == "/api/v1/tasks?state=queued&limit=2"
    assert script.seen[1].path == "/api/v1/tasks?state=queued&cursor=5&limit=2"


def test_an_unreachable_hub_is_a_transport_error(fake: tuple[Script, str]) -> None:
    script, url = fake
    script.actions = ["drop", "drop"]
    waits: list[float] = []
    with pytest.raises(TransportError) as caught:
        client(url, waits, retries=1).submit("demo.count")
    assert caught.value.status is None and len(script.seen) == 2 and len(waits) == 1
