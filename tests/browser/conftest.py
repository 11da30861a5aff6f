"""Browser fixtures: the whole system from `run.py`, and Debian's Chromium through Playwright.

The system runs once per session (embedded Redis, SQLite, hub, worker, beat with a
2-second heartbeat); each test gets a fresh browser context.
"""

import os
import signal
import subprocess
import sys
from collections.abc import Callable, Generator, Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Browser, BrowserContext, Page, Playwright, sync_playwright

from hub.embedded import free_port
from hub.launcher import wait_ready

ROOT = Path(__file__).resolve().parents[2]
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--no-sandbox", "--disable-gpu", "--disable-background-networking",
    "--disable-component-update", "--disable-sync", "--no-first-run", "--disable-quic",
]
READY_TIMEOUT = 90
STOP_TIMEOUT = 30


def tail(path: Path, lines: int = 60) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no output)"


def stop_launcher(launcher: "subprocess.Popen[bytes]") -> None:
    """Ctrl-C, as a person would (the launcher stops its children); kill if it hangs."""
    if launcher.poll() is None:
        os.kill(launcher.pid, signal.SIGINT)
        try:
            launcher.wait(timeout=STOP_TIMEOUT)
            return
        except subprocess.TimeoutExpired:
            pass
    try:
        os.killpg(launcher.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    launcher.wait()


@pytest.fixture(scope="session")
def hub_log(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("hub-system") / "run.log"


@pytest.fixture(scope="session")
def hub_url(hub_log: Path) -> Iterator[str]:
    """`python run.py` in a temporary directory on a free port; yields the base URL."""
    workdir = hub_log.parent
    port = free_port()
    env = {key: value for key, value in os.environ.items()
           if key not in ("REDIS_URL", "DATABASE_URL", "HUB_BROKER_URL")}
    env.update(HUB_ENV="development", HUB_HOST="127.0.0.1", HUB_PORT=str(port),
               HUB_INSTANCE_DIR=str(workdir / "instance"), HUB_DEV_HEARTBEAT_SECONDS="2",
               PYTHONUNBUFFERED="1")
    base = f"http://127.0.0.1:{port}"
    with open(hub_log, "wb") as log:
        launcher = subprocess.Popen([sys.executable, str(ROOT / "run.py")], cwd=workdir, env=env,
                                    stdout=log, stderr=subprocess.STDOUT,
                                    stdin=subprocess.DEVNULL, start_new_session=True)
    try:
        if not wait_ready(f"{base}/readyz", [launcher], READY_TIMEOUT):
            pytest.fail(f"the hub did not become ready; run.py output:\n{tail(hub_log)}")
        yield base
    finally:
        stop_launcher(launcher)


@pytest.fixture(scope="session")
def playwright() -> Iterator[Playwright]:
    manager = sync_playwright().start()
    yield manager
    manager.stop()


@pytest.fixture(scope="session")
def browser(playwright: Playwright) -> Iterator[Browser]:
    if not os.access(CHROMIUM, os.X_OK):  # `make test` installs it where it can (root + apt)
        pytest.skip(f"{CHROMIUM} is missing: apt-get install chromium")
    chromium = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
    yield chromium
    chromium.close()


@pytest.fixture
def context(browser: Browser, hub_url: str) -> Iterator[BrowserContext]:
    ctx = browser.new_context(base_url=hub_url, viewport={"width": 1200, "height": 800})
    ctx.set_default_timeout(30_000)
    yield ctx
    ctx.close()


@pytest.fixture
def page_errors() -> list[str]:
    """Uncaught errors and console errors of every page opened with `open_page`."""
    return []


@pytest.fixture
def open_page(context: BrowserContext, page_errors: list[str]) -> Callable[[], Page]:
    """Opens the dashboard in a new tab of this test's context, recording page errors."""

    def open_() -> Page:
        page = context.new_page()
        page.on("pageerror", lambda exc: page_errors.append(f"pageerror: {exc}"))
        page.on("console", lambda msg: msg.type == "error"
                and page_errors.append(f"console: {msg.text}"))
        page.goto("/")
        return page

    return open_


FAILED = pytest.StashKey[bool]()


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(
    item: pytest.Item, call: pytest.CallInfo[None]
) -> Generator[None, pytest.TestReport, pytest.TestReport]:
    report = yield
    if report.when == "call":
        item.stash[FAILED] = report.failed
    return report


@pytest.fixture(autouse=True)
def _show_hub_output_on_failure(request: pytest.FixtureRequest, hub_log: Path) -> Iterator[None]:
    yield
    if request.node.stash.get(FAILED, False):
        print(f"--- tail of run.py output ({hub_log}) ---\n{tail(hub_log)}")
