"""The hub served by uWSGI (deploy/uwsgi.ini: gevent, uWSGI's websockets), a real worker,
and real Socket.IO clients over websocket: subscribe, task events, recovery."""

import importlib.util
import subprocess
import sys
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
import requests

from hub.config import load_config
from hub.embedded import free_port
from hub.launcher import stop
from tests.support.stack import ROOT, LiveClient, Stack, close_all, wait_until

pytestmark = [
    pytest.mark.integration,
    pytest.mark.skipif(importlib.util.find_spec("pyuwsgi") is None,
                       reason="pyuwsgi (uWSGI's PyPI wheel) is not installed: "
                              "pip install -c constraints.txt -e '.[dev]'"),
]

UWSGI = Path(sys.executable).parent / "uwsgi"  # pyuwsgi's console script
FINAL = {"task.succeeded", "task.failed", "task.cancelled"}


def start_uwsgi(workdir: Path, env: dict[str, str], name: str) -> subprocess.Popen[bytes]:
    """uWSGI with deploy/uwsgi.ini, logging to workdir/<name>.log, in its own session so
    that stopping its process group stops master, worker and router alike."""
    log = open(workdir / f"{name}.log", "ab")  # noqa: SIM115 - closed with the process
    try:
        return subprocess.Popen([str(UWSGI), "--ini", str(ROOT / "deploy" / "uwsgi.ini")],
                                cwd=workdir, env=env, stdout=log, stderr=subprocess.STDOUT,
                                start_new_session=True)
    finally:
        log.close()


class UwsgiStack(Stack):
    """A Stack whose web role is uWSGI with deploy/uwsgi.ini instead of `run.py web`."""

    def start_role(self, role: str) -> None:
        if role == "web":
            self.processes["web"] = start_uwsgi(self.workdir, self.env(), "web")
        else:
            super().start_role(role)

    def start(self) -> "UwsgiStack":
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.port = free_port()
        self.migrate_and_make_key()
        try:
            self.start_role("web")
            self.start_role("worker")
            self.wait_ready()
        except BaseException:
            self.stop()
            raise
        return self


@pytest.fixture(scope="module")
def uwsgi_stack(redis_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    # Its own Redis database, apart from the eventlet/gevent stacks' (1, 2, ...).
    url = f"{redis_url.rsplit('/', 1)[0]}/12"
    workdir = tmp_path_factory.mktemp("stack-uwsgi")
    stack = UwsgiStack("gevent", f"sqlite:///{workdir / 'hub.db'}", url, workdir, beat=False)
    try:
        yield stack.start()
    finally:
        stack.stop()


@pytest.fixture
def hub(uwsgi_stack: Stack) -> Iterator[Stack]:
    yield uwsgi_stack
    close_all(uwsgi_stack.clients)
    uwsgi_stack.clients.clear()


def test_the_hub_under_uwsgi_runs_in_gevent_uwsgi_mode(hub: Stack) -> None:
    assert hub.get("/readyz").status_code == 200
    log = hub.logs("web")
    assert "gevent" in log and "Cannot obtain socket" not in log, log


def test_a_task_is_followed_over_a_uwsgi_websocket(hub: Stack) -> None:
    client = hub.client("alice")
    assert client.sio.transport() == "websocket"
    task = hub.submit("alice", steps=6, delay=0.1)
    channel = f"task:{task['id']}"
    first = client.call("subscribe", {"channel": channel})
    assert first["ok"], first
    early = client.call("subscribe", {"channel": channel,
                                      "since": {"offset": 0, "epoch": first["epoch"]}})
    assert early["recovered"], early
    client.wait_for(lambda c: any(p["type"] in FINAL for p in c.publications(channel)),
                    what="the end of the task")
    merged = {p["offset"]: p for p in early["publications"] + client.publications(channel)}
    pubs = [merged[k] for k in sorted(merged)]
    assert [p["offset"] for p in pubs] == list(range(1, len(pubs) + 1))
    kinds = [p["type"] for p in pubs]
    assert kinds[:2] == ["task.queued", "task.started"] and kinds[-1] == "task.succeeded"
    assert set(kinds[2:-1]) == {"task.progress"}
    assert pubs[-1]["data"]["result"] == {"counted": 6}
    # The end also reaches the owner's personal channel, pushed by the worker through Redis.
    client.wait_for(lambda c: any(p["channel"] == "user:alice"
                                  for p in c.of_type("task.succeeded")))


def test_recovery_after_a_disconnect_under_uwsgi(hub: Stack) -> None:
    first_client = hub.client("alice")
    task = hub.submit("alice", steps=12, delay=0.25)
    channel = f"task:{task['id']}"
    ack = first_client.call("subscribe", {"channel": channel})
    first_client.wait_for(lambda c: len([p for p in c.publications(channel)
                                         if p["type"] == "task.progress"]) >= 2)
    first_client.close()
    seen = first_client.publications(channel)
    last = seen[-1]
    time.sleep(1.0)  # the task moves on while nobody listens
    second = hub.client("alice")
    rec = second.call("subscribe", {"channel": channel,
                                    "since": {"offset": last["offset"], "epoch": ack["epoch"]}})
    assert rec["recovered"] is True
    assert rec["publications"], "the task published while we were away"
    assert rec["publications"][0]["offset"] == last["offset"] + 1
    second.wait_for(lambda c: any(p["type"] == "task.succeeded"
                                  for p in c.publications(channel) + rec["publications"]),
                    what="the end of the task")
    merged = {p["offset"]: p for p in seen + rec["publications"] + second.publications(channel)}
    offsets = sorted(merged)  # from the first publication after the subscription
    assert offsets == list(range(offsets[0], offsets[-1] + 1))
    assert merged[offsets[-1]]["type"] == "task.succeeded"


def test_the_config_accepts_gevent_uwsgi() -> None:
    assert load_config({"HUB_ASYNC_MODE": "gevent_uwsgi"})["HUB_ASYNC_MODE"] == "gevent_uwsgi"


@pytest.fixture
def gevent_uwsgi_hub(hub: Stack) -> Iterator[str]:
    """A second web process of the same hub (same Redis, database and worker), under uWSGI
    in Flask-SocketIO's gevent_uwsgi mode; yields its base URL."""
    port = free_port()
    env = {**hub.env(), "HUB_PORT": str(port), "HUB_ASYNC_MODE": "gevent_uwsgi"}
    process = start_uwsgi(hub.workdir, env, "web-gevent-uwsgi")
    url = f"http://127.0.0.1:{port}"

    def ready() -> bool:
        if process.poll() is not None:
            raise RuntimeError((hub.workdir / "web-gevent-uwsgi.log").read_text()[-4000:])
        try:
            return requests.get(f"{url}/readyz", timeout=2).status_code == 200
        except requests.RequestException:
            return False

    try:
        wait_until(ready, 60, interval=0.2, what="the gevent_uwsgi hub to be ready")
        yield url
    finally:
        stop({"web-gevent-uwsgi": process})


def test_gevent_uwsgi_mode_serves_long_polling(hub: Stack, gevent_uwsgi_hub: str) -> None:
    # The pyuwsgi wheel has no SSL, so uWSGI's own websocket handshake is out: long-polling.
    client = LiveClient(gevent_uwsgi_hub, {"token": hub.token("alice")})
    client.sio.connect(gevent_uwsgi_hub, auth=client.auth, transports=["polling"],
                       wait_timeout=10)
    hub.clients.append(client)
    task = hub.submit("alice", steps=3, delay=0.1)
    channel = f"task:{task['id']}"
    first = client.call("subscribe", {"channel": channel})
    early = client.call("subscribe", {"channel": channel,
                                      "since": {"offset": 0, "epoch": first["epoch"]}})
    assert first["ok"] and early["recovered"], (first, early)
    client.wait_for(lambda c: any(p["type"] in FINAL for p in c.publications(channel)),
                    what="the end of the task")
    merged = {p["offset"]: p for p in early["publications"] + client.publications(channel)}
    kinds = [merged[k]["type"] for k in sorted(merged)]
    assert kinds[:2] == ["task.queued", "task.started"] and kinds[-1] == "task.succeeded"
    assert client.sio.transport() == "polling"


HUB_JS_CONNECT = """async (token) => {
  const { connect } = await import("/static/hub.js");
  window.seen = [];
  window.testClient = connect({ token });
  window.testClient.socket.onAny((event) => window.seen.push(event));
}"""


@pytest.mark.browser
def test_hub_js_in_a_browser_over_a_uwsgi_websocket(hub: Stack) -> None:
    from tests.browser.conftest import CHROMIUM, CHROMIUM_ARGS

    if not Path(CHROMIUM).exists():
        pytest.skip(f"{CHROMIUM} is missing: apt-get install chromium")
    from playwright.sync_api import sync_playwright

    def drive() -> None:
        with sync_playwright() as playwright:
            browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
            try:
                page = browser.new_page()
                page.goto(hub.base_url + "/")
                page.evaluate(HUB_JS_CONNECT, hub.token("carol"))
                page.wait_for_function("() => window.testClient.status === 'connected'",
                                       timeout=30_000)
                transport = page.evaluate(
                    "() => window.testClient.socket.io.engine.transport.name")
                assert transport == "websocket"
                hub.submit("carol", steps=2, delay=0)
                # The end reaches carol's personal channel, which hub.js joins on connect.
                page.wait_for_function("() => window.seen.includes('task.succeeded')",
                                       timeout=30_000)
            finally:
                browser.close()

    # In a thread of its own: Playwright's sync API refuses to run where an earlier test
    # of the session left an asyncio event loop set.
    with ThreadPoolExecutor(max_workers=1) as pool:
        pool.submit(drive).result(timeout=120)
