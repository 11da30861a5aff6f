"""A real Hub for integration tests: hub, worker and beat processes on a real Redis and DB."""

import os
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import requests
import socketio

from events import tokens
from hub.embedded import free_port
from hub.launcher import stop

ROOT = Path(__file__).resolve().parents[2]
JWT_SECRET = "integration-jwt-secret-0123456789-abcdefghijklmnop"


def close_all(clients: list["LiveClient"]) -> None:
    """Disconnect clients in parallel: under gevent a client's close handshake takes ~3 s."""
    with ThreadPoolExecutor(max_workers=64) as pool:
        list(pool.map(lambda client: client.close(), clients))


def wait_until(predicate: Callable[[], Any], timeout: float = 30, interval: float = 0.05,
               what: str = "condition") -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}")


class LiveClient:
    """A real python-socketio client (websocket transport) that records every event."""

    def __init__(self, url: str, auth: dict[str, Any], reconnection: bool = False) -> None:
        self.sio = socketio.Client(reconnection=reconnection)
        self.events: list[tuple[str, Any]] = []
        self.connect_error: Any = None
        self._lock = threading.Lock()
        self.sio.on("*", self._record)
        self.sio.on("connect_error", self._refused)
        self.url = url
        self.auth = auth

    def _record(self, event: str, *args: Any) -> None:
        with self._lock:
            self.events.append((event, args[0] if args else None))

    def _refused(self, data: Any) -> None:
        self.connect_error = data

    def connect(self) -> "LiveClient":
        self.sio.connect(self.url, auth=self.auth, transports=["websocket"], wait_timeout=10)
        return self

    def call(self, event: str, data: Any, timeout: float = 15) -> dict[str, Any]:
        return self.sio.call(event, data, timeout=timeout)

    def publications(self, channel: str | None = None) -> list[dict[str, Any]]:
        with self._lock:
            return [data for _, data in self.events
                    if isinstance(data, dict) and "offset" in data
                    and (channel is None or data.get("channel") == channel)]

    def of_type(self, event_type: str) -> list[Any]:
        with self._lock:
            return [data for name, data in self.events if name == event_type]

    def wait_for(self, predicate: Callable[["LiveClient"], Any], timeout: float = 30,
                 what: str = "events") -> Any:
        return wait_until(lambda: predicate(self), timeout, what=what)

    def close(self) -> None:
        if self.sio.connected:
            self.sio.disconnect()


@dataclass
class Stack:
    """Processes of one Hub (hub web + worker + beat) and helpers to talk to them."""

    async_mode: str
    database_url: str
    redis_url: str
    workdir: Path
    beat: bool = True
    extra_env: dict[str, str] = field(default_factory=dict)
    port: int = 0
    prefix: str = field(default_factory=lambda: f"t{uuid.uuid4().hex[:6]}")
    service_key: str = ""
    processes: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict)
    clients: list[LiveClient] = field(default_factory=list)

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def env(self) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith(("HUB_", "REDIS", "DATA"))}
        env.update({
            "HUB_ENV": "development", "HUB_INSTANCE_DIR": str(self.workdir),
            "DATABASE_URL": self.database_url, "REDIS_URL": self.redis_url,
            "HUB_JWT_SECRET": JWT_SECRET, "HUB_SECRET_KEY": JWT_SECRET,
            "HUB_ASYNC_MODE": self.async_mode, "HUB_PORT": str(self.port),
            "HUB_REDIS_PREFIX": self.prefix, "HUB_DEV_HEARTBEAT_SECONDS": "1",
            "HUB_DIGEST_SECONDS": "2", "HUB_CLEANUP_SECONDS": "2",
            "HUB_WORKER_CONCURRENCY": "2", "HUB_LOG_LEVEL": "WARNING",
            "HUB_TOKEN_CHECK_SECONDS": "0.5", "PYTHONUNBUFFERED": "1",
        })
        env.update(self.extra_env)
        return env

    def migrate_and_make_key(self) -> None:
        env = self.env()
        script = (
            "from flask_migrate import upgrade\n"
            "from hub import create_app\n"
            "from hub.auth import create_service\n"
            "app = create_app({'HUB_PROCESS': 'cli'})\n"
            "with app.app_context():\n"
            "    upgrade()\n"
            "    print(create_service('tests', ['tasks','notify','publish','tokens','admin'])[1])\n"
        )
        out = subprocess.run([sys.executable, "-c", script], cwd=ROOT, env=env,
                             capture_output=True, text=True, timeout=120)
        if out.returncode != 0:
            raise RuntimeError(f"migration failed:\n{out.stderr[-3000:]}")
        self.service_key = out.stdout.strip().splitlines()[-1]

    def start_role(self, role: str) -> None:
        log = open(self.workdir / f"{role}.log", "ab")  # noqa: SIM115 - closed with the process
        self.processes[role] = subprocess.Popen(
            [sys.executable, str(ROOT / "run.py"), role], cwd=self.workdir, env=self.env(),
            stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        log.close()

    def start(self) -> "Stack":
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.port = free_port()
        self.migrate_and_make_key()
        for role in ("web", "worker") + (("beat",) if self.beat else ()):
            self.start_role(role)
        self.wait_ready()
        return self

    def wait_ready(self, timeout: float = 60) -> None:
        def ready() -> bool:
            for role, process in self.processes.items():
                if process.poll() is not None:
                    raise RuntimeError(f"{role} exited:\n{self.logs(role)}")
            try:
                return requests.get(f"{self.base_url}/readyz", timeout=2).status_code == 200
            except requests.RequestException:
                return False

        wait_until(ready, timeout, interval=0.2, what="the hub to be ready")
        # The worker is ready when it consumes: a tiny task proves it.
        task = self.post("/api/v1/tasks", {"name": "demo.count", "args": {"steps": 1, "delay": 0}})
        self.wait_task(task.json()["id"], {"succeeded"}, timeout=60)

    def logs(self, role: str) -> str:
        path = self.workdir / f"{role}.log"
        return path.read_text(errors="replace")[-4000:] if path.exists() else ""

    def stop_role(self, role: str, sig: int = signal.SIGTERM) -> None:
        process = self.processes.pop(role, None)
        if process is not None:
            stop({role: process}, sig=sig)

    def stop(self) -> None:
        close_all(self.clients)
        for role in list(self.processes):
            self.stop_role(role)

    # -- REST and socket helpers -------------------------------------------------

    def headers(self, key: str | None = None) -> dict[str, str]:
        return {"Authorization": f"Bearer {key or self.service_key}"}

    def get(self, path: str, key: str | None = None, **kw: Any) -> requests.Response:
        return requests.get(self.base_url + path, headers=self.headers(key), timeout=15, **kw)

    def post(self, path: str, body: Any = None, key: str | None = None) -> requests.Response:
        return requests.post(self.base_url + path, json=body, headers=self.headers(key),
                             timeout=15)

    def token(self, user: str, ttl: int = 600, channels: list[str] | None = None) -> str:
        return tokens.issue(JWT_SECRET, user, ttl, channels)[0]

    def client(self, user: str, connect: bool = True, **auth: Any) -> LiveClient:
        auth.setdefault("token", self.token(user))
        client = LiveClient(self.base_url, auth)
        self.clients.append(client)
        return client.connect() if connect else client

    def submit(self, user: str = "alice", **args: Any) -> dict[str, Any]:
        response = self.post("/api/v1/tasks", {"name": "demo.count", "args": args, "user": user})
        assert response.status_code == 202, response.text
        return response.json()

    def wait_task(self, task_id: str, states: set[str], timeout: float = 60) -> dict[str, Any]:
        def done() -> dict[str, Any] | None:
            record = self.get(f"/api/v1/tasks/{task_id}").json()
            return record if record["state"] in states else None

        return wait_until(done, timeout, interval=0.1, what=f"task {task_id} in {states}")


@contextmanager
def own_stack(redis_url: str, tmp_path: Path, db_index: int, database_url: str | None = None,
              **env: str) -> Iterator[Stack]:
    """A one-off eventlet stack with its own settings (no beat), on SQLite unless told."""
    stack = Stack("eventlet", database_url or f"sqlite:///{tmp_path / 'hub.db'}",
                  f"{redis_url.rsplit('/', 1)[0]}/{db_index}", tmp_path, beat=False,
                  extra_env=env)
    try:
        yield stack.start()
    finally:
        stack.stop()
