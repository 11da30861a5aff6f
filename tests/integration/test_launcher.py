"""`python run.py` itself: no configuration, a temp dir, a task runs, Ctrl-C, nothing left."""

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
import requests

from hub.embedded import free_port
from tests.support.stack import ROOT, LiveClient, close_all, wait_until

pytestmark = pytest.mark.integration


def descendants(pid: int) -> set[int]:
    """Every live process below pid (from /proc), so we can check none outlives the launcher."""
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        children.setdefault(int(fields[1]), []).append(int(entry.name))
    found: set[int] = set()
    stack = [pid]
    while stack:
        for child in children.get(stack.pop(), []):
            if child not in found:
                found.add(child)
                stack.append(child)
    return found


def alive(pid: int) -> bool:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


@contextmanager
def launched(tmp_path: Path, **settings: str) -> Iterator[tuple[str, subprocess.Popen[bytes]]]:
    """`python run.py` in an empty directory with no configuration but `settings`; on exit,
    Ctrl-C, and check that it stopped cleanly and left no process behind."""
    port = free_port()
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("HUB_", "REDIS_URL", "DATABASE_URL"))}
    env.update(HUB_PORT=str(port), PYTHONUNBUFFERED="1", **settings)
    log = open(tmp_path / "run.log", "wb")  # noqa: SIM115
    launcher = subprocess.Popen([sys.executable, str(ROOT / "run.py")], cwd=tmp_path, env=env,
                                stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    base = f"http://127.0.0.1:{port}"
    try:
        def ready() -> bool:
            assert launcher.poll() is None, (tmp_path / "run.log").read_text()
            try:
                return requests.get(f"{base}/readyz", timeout=2).status_code == 200
            except requests.RequestException:
                return False

        wait_until(ready, timeout=120, interval=0.3, what="run.py to be ready")
        wait_until(lambda: "Hub is ready." in (tmp_path / "run.log").read_text(), timeout=10)
        yield base, launcher
    finally:
        family = descendants(launcher.pid) | {launcher.pid}
        os.kill(launcher.pid, signal.SIGINT)
        try:
            launcher.wait(timeout=60)
        finally:
            log.close()
            if launcher.poll() is None:
                os.killpg(launcher.pid, signal.SIGKILL)
    assert launcher.returncode == 0, (tmp_path / "run.log").read_text()[-3000:]
    time.sleep(0.5)
    left = [pid for pid in family if alive(pid)]
    assert left == [], f"left behind: {left}"
    assert "stopped." in (tmp_path / "run.log").read_text()


def dev_key(tmp_path: Path) -> dict[str, str]:
    key = (tmp_path / "instance" / "dev-service-key").read_text().strip()
    return {"Authorization": f"Bearer {key}"}


def test_run_py_starts_everything_and_stops_cleanly(tmp_path: Path) -> None:
    with launched(tmp_path) as (base, launcher):
        output = (tmp_path / "run.log").read_text()
        headers = dev_key(tmp_path)
        assert headers["Authorization"].split()[1] in output and f"{base}/" in output
        assert (tmp_path / "instance" / "hub.db").exists()
        created = requests.post(f"{base}/api/v1/tasks", headers=headers, timeout=10, json={
            "name": "demo.count", "args": {"steps": 3, "delay": 0.1}, "user": "alice"})
        assert created.status_code == 202
        task_id = created.json()["id"]
        wait_until(lambda: requests.get(f"{base}/api/v1/tasks/{task_id}", headers=headers,
                                        timeout=5).json()["state"] == "succeeded", timeout=60)
        family = descendants(launcher.pid)
        assert len(family) >= 4  # redis, web, worker (+ its pool), beat


def web_processes(launcher: subprocess.Popen[bytes]) -> list[int]:
    return [pid for pid in descendants(launcher.pid)
            if Path(f"/proc/{pid}/cmdline").read_bytes().endswith(b"run.py\0web\0")]


def sockets_of(pid: int) -> int:
    count = 0
    for fd in Path(f"/proc/{pid}/fd").iterdir():
        try:
            count += os.readlink(fd).startswith("socket:")
        except FileNotFoundError:  # closed while we looked (a probe's connection, say)
            pass
    return count


def test_two_web_processes_share_the_port(tmp_path: Path) -> None:
    """HUB_WEB_PROCESSES=2: the kernel spreads connections over both (SO_REUSEPORT), and a
    publication reaches the clients of each through Redis."""
    with launched(tmp_path, HUB_WEB_PROCESSES="2") as (base, launcher):
        webs = web_processes(launcher)
        assert len(webs) == 2
        before = {pid: sockets_of(pid) for pid in webs}
        headers = dev_key(tmp_path)
        token = requests.post(f"{base}/api/v1/tokens", headers=headers, timeout=10,
                              json={"user": "alice"}).json()["token"]
        clients = [LiveClient(base, {"token": token}).connect() for _ in range(16)]
        try:
            for client in clients:
                assert client.call("subscribe", {"channel": "public:both"})["ok"]
            # 16 connections all hashed to one process would be a 1-in-32768 fluke.
            assert all(sockets_of(pid) > before[pid] for pid in webs)
            published = requests.post(f"{base}/api/v1/publish", headers=headers, timeout=10,
                                      json={"channel": "public:both", "type": "hello",
                                            "data": {"n": 1}})
            assert published.status_code == 202, published.text
            for client in clients:
                client.wait_for(lambda c: len(c.publications("public:both")) == 1)
        finally:
            close_all(clients)


def role_leader(launcher: subprocess.Popen[bytes], role: bytes) -> int | None:
    """The launcher's child running `role` (the worker and beat exec into celery)."""
    for pid in descendants(launcher.pid):
        try:
            stat = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
            argv = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        if int(stat[1]) == launcher.pid and role in argv and alive(pid):
            return pid
    return None


def test_a_child_that_dies_is_restarted(tmp_path: Path) -> None:
    """SIGKILL the worker's whole process group, twice, and beat once: each comes back after
    its backoff with a log line, tasks still run end to end, and Ctrl-C stops all."""
    with launched(tmp_path) as (base, launcher):
        log = tmp_path / "run.log"
        headers = dev_key(tmp_path)
        for backoff in (1, 2):  # the second exit comes soon after the first: twice the delay
            old = role_leader(launcher, b"worker")
            assert old is not None
            os.killpg(old, signal.SIGKILL)
            wait_until(lambda gone=old: role_leader(launcher, b"worker") not in (None, gone),
                       timeout=30, what="a new worker")
            assert f"worker exited with signal SIGKILL; restarting in {backoff} s" \
                in log.read_text()
        beat = role_leader(launcher, b"beat")
        assert beat is not None
        os.killpg(beat, signal.SIGKILL)
        wait_until(lambda: role_leader(launcher, b"beat") not in (None, beat), timeout=30,
                   what="a new beat")
        created = requests.post(f"{base}/api/v1/tasks", headers=headers, timeout=10, json={
            "name": "demo.count", "args": {"steps": 2, "delay": 0.1}, "user": "alice"})
        assert created.status_code == 202, created.text
        task_id = created.json()["id"]
        wait_until(lambda: requests.get(f"{base}/api/v1/tasks/{task_id}", headers=headers,
                                        timeout=5).json()["state"] == "succeeded", timeout=60)
        assert requests.get(f"{base}/readyz", timeout=5).status_code == 200
    output = log.read_text()
    assert output.count("worker restarted (pid ") == 2 and "beat restarted (pid " in output
    after_stop = output.split("stopping...", 1)[1]
    assert "restarting in" not in after_stop and "restarted (pid" not in after_stop
