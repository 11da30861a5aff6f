"""`python run.py`: the whole system as child processes, with prefixed logs, restarts of a
child that exits (after a backoff), and a clean stop."""

import os
import signal
import subprocess
import sys
import threading
import time
import urllib.request
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from hub.config import load_config
from hub.embedded import EmbeddedRedis


def processes(web: int) -> list[tuple[str, str]]:
    """(log prefix, run.py role) for every child: `web` web processes, a worker, beat."""
    webs = [("web", "web")] if web == 1 else [(f"web.{n}", "web") for n in range(1, web + 1)]
    return [*webs, ("worker", "worker"), ("beat", "beat")]


RUN_PY = str(Path(__file__).resolve().parent.parent / "run.py")


def prepare_database() -> str | None:
    """Migrate, and in development make sure a service key exists; returns that key."""
    from flask_migrate import upgrade

    from hub import create_app
    from hub.auth import create_service
    from models import Service, db

    app = create_app({"HUB_PROCESS": "cli"})
    with app.app_context():
        upgrade()
        if app.config["HUB_ENV"] != "development":
            return None
        key_file = Path(app.instance_path) / "dev-service-key"
        if key_file.exists():
            return key_file.read_text().strip()
        name = "dev"
        if db.session.scalar(db.select(Service).where(Service.name == name)) is not None:
            name = f"dev-{int(time.time())}"
        _, key = create_service(name, ["tasks", "notify", "publish", "tokens", "admin"])
        key_file.write_text(key + "\n")
        key_file.chmod(0o600)
        return key


def forward(prefix: str, stream: "subprocess.IO[bytes]") -> None:
    for line in iter(stream.readline, b""):
        sys.stdout.write(f"{prefix:>7} | {line.decode(errors='replace')}")
        sys.stdout.flush()


def wait_ready(url: str, processes: Iterable["subprocess.Popen[bytes]"], timeout: float) -> bool:
    """Poll url until it answers 200; False if any of the processes exits or time runs out."""
    watched = list(processes)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if any(process.poll() is not None for process in watched):
            return False
        try:
            with urllib.request.urlopen(url, timeout=2) as response:
                if response.status == 200:
                    return True
        except OSError:
            pass
        time.sleep(0.2)
    return False


def stop(children: dict[str, subprocess.Popen[bytes]], grace: float = 15.0,
         sig: int = signal.SIGTERM) -> None:
    """Signal every child's process group (SIGTERM by default), wait, then SIGKILL what is
    left, worker pool processes included."""
    for child in children.values():
        if child.poll() is None:
            try:
                os.killpg(child.pid, sig)
            except ProcessLookupError:
                pass
    deadline = time.monotonic() + grace
    for child in children.values():
        try:
            child.wait(timeout=max(0.1, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            pass
    for child in children.values():
        try:
            os.killpg(child.pid, signal.SIGKILL)  # also reaps worker pool processes
        except ProcessLookupError:
            pass
        child.wait()


RESTART_FIRST = 1.0  # seconds before a child that exited is started again
RESTART_MAX = 30.0  # the delay doubles after each exit up to this
STABLE_SECONDS = 60.0  # a child that stayed up this long starts over at RESTART_FIRST


@dataclass
class Child:
    """A supervised child process and its restart backoff."""

    name: str
    role: str
    process: "subprocess.Popen[bytes]"
    started: float
    delay: float = RESTART_FIRST
    due: float | None = None  # monotonic time of a pending restart


def spawn(name: str, role: str, env: dict[str, str]) -> "subprocess.Popen[bytes]":
    """`run.py <role>` in a session of its own (stop() signals its whole group)."""
    process = subprocess.Popen([sys.executable, RUN_PY, role], env=env, stdout=subprocess.PIPE,
                               stderr=subprocess.STDOUT, start_new_session=True)
    threading.Thread(target=forward, args=(name, process.stdout), daemon=True).start()
    return process


def describe(returncode: int) -> str:
    if returncode >= 0:
        return f"code {returncode}"
    try:
        return f"signal {signal.Signals(-returncode).name}"
    except ValueError:
        return f"signal {-returncode}"


def supervise(child: Child, env: dict[str, str], now: float) -> None:
    """Notice that a child exited and schedule its restart, or restart it once it is due."""
    if child.due is None:
        returncode = child.process.poll()
        if returncode is None:
            return
        try:
            os.killpg(child.process.pid, signal.SIGKILL)  # a dead worker's pool processes too
        except ProcessLookupError:
            pass
        if now - child.started >= STABLE_SECONDS:
            child.delay = RESTART_FIRST
        child.due = now + child.delay
        print(f"{child.name} exited with {describe(returncode)}; restarting in "
              f"{child.delay:g} s", flush=True)
        child.delay = min(child.delay * 2, RESTART_MAX)
    elif now >= child.due:
        child.process = spawn(child.name, child.role, env)
        child.started, child.due = now, None
        print(f"{child.name} restarted (pid {child.process.pid})", flush=True)


def run_all() -> int:
    config = load_config()
    instance = Path(config["INSTANCE_DIR"])
    instance.mkdir(parents=True, exist_ok=True)
    env = dict(os.environ, HUB_INSTANCE_DIR=str(instance), PYTHONUNBUFFERED="1")
    redis_server = None
    if not os.environ.get("REDIS_URL"):
        redis_server = EmbeddedRedis(instance / "redis")
        env["REDIS_URL"] = redis_server.start()
        os.environ["REDIS_URL"] = env["REDIS_URL"]
        print(f"embedded Redis on {env['REDIS_URL']} (data in {instance / 'redis'})", flush=True)
    children: list[Child] = []
    stopping = threading.Event()

    def on_signal(signum: int, _frame: object) -> None:
        stopping.set()

    signal.signal(signal.SIGINT, on_signal)
    signal.signal(signal.SIGTERM, on_signal)
    try:
        key = prepare_database()
        for name, role in processes(config["HUB_WEB_PROCESSES"]):
            children.append(Child(name, role, spawn(name, role, env), time.monotonic()))
        base = f"http://{config['HUB_HOST']}:{config['HUB_PORT']}"
        # A child that exits during start-up is a broken set-up, not a crash: stop, say so.
        if not wait_ready(f"{base}/readyz", (c.process for c in children), timeout=90):
            print("Hub did not become ready; stopping.", flush=True)
            return 1
        print(f"\nHub is ready.\n  dashboard: {base}/\n  API docs:  {base}/api/docs", flush=True)
        if key:
            print(f"  service key (development): {key}\n  try: curl -X POST {base}/api/v1/tasks "
                  f"-H 'Authorization: Bearer {key}' -H 'Content-Type: application/json' "
                  "-d '{\"name\": \"demo.count\", \"args\": {\"steps\": 10}, \"user\": \"alice\"}'",
                  flush=True)
        print("Press Ctrl-C to stop.\n", flush=True)
        while not stopping.wait(0.5):
            for child in children:
                if not stopping.is_set():  # no restarts once a stop was asked for
                    supervise(child, env, time.monotonic())
        return 0
    finally:
        print("stopping...", flush=True)
        stop({child.name: child.process for child in children})
        if redis_server is not None:
            redis_server.stop()
        print("stopped.", flush=True)
