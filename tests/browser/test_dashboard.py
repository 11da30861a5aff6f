"""The dashboard in a real browser: sign in, live task progress, the schedule feed,
recovery after a dropped connection, and a second tab of the same user."""

import os
from collections.abc import Callable
from typing import Any

import pytest
from playwright.sync_api import Locator, Page

from events import tokens
from hub.config import DEV_SECRET

pytestmark = pytest.mark.browser

# The launched hub inherits HUB_JWT_SECRET from this environment, if set.
JWT_SECRET = os.environ.get("HUB_JWT_SECRET") or DEV_SECRET

# In the page: a hub.js client on a given token, fetching fresh ones from the dev endpoint.
CONNECT_WITH_REFRESH = """async ([token, user]) => {
  const { connect } = await import("/static/hub.js");
  const getToken = async () => {
    const response = await fetch("/dashboard/dev-token", {
      method: "POST", headers: {"Content-Type": "application/json"},
      body: JSON.stringify({ user }) });
    return (await response.json()).token;
  };
  window.testClient = connect({ token, getToken });
}"""

WAIT_MS = 30_000  # an upper bound for waiting, never a speed assertion


def sign_in(page: Page, user: str) -> None:
    page.get_by_test_id("signin-user").fill(user)
    page.get_by_test_id("signin-button").click()
    page.wait_for_selector('[data-testid="conn-status"][data-status="connected"]')
    page.wait_for_function("(user) => window.hubClient && window.hubClient.user === user",
                           arg=user)


def run_demo(page: Page, steps: int, delay: float) -> dict[str, Any]:
    """Click "Run demo task" and return the task record the hub answered with."""
    page.get_by_test_id("demo-steps").fill(str(steps))
    page.get_by_test_id("demo-delay").fill(str(delay))
    with page.expect_response("**/dashboard/demo-task") as response:
        page.get_by_test_id("run-demo").click()
    assert response.value.status == 202
    return response.value.json()


def task_row(page: Page, task_id: str) -> Locator:
    return page.locator(f'[data-testid="task-row"][data-task-id="{task_id}"]')


def wait_succeeded(page: Page, task_id: str) -> None:
    page.wait_for_selector(
        f'[data-testid="task-row"][data-task-id="{task_id}"][data-state="succeeded"]',
        timeout=WAIT_MS)
    bar = task_row(page, task_id).get_by_test_id("task-progress")
    assert bar.get_attribute("data-percent") == "100"


def wait_percent_at_least(page: Page, task_id: str, percent: int) -> None:
    page.wait_for_function(
        """([id, percent]) => {
             const row = document.querySelector(`[data-testid="task-row"][data-task-id="${id}"]`);
             return row && Number(row.querySelector('[data-testid="task-progress"]')
                                      .dataset.percent) >= percent;
           }""", arg=[task_id, percent], timeout=WAIT_MS)


def applied_offsets(page: Page, task_id: str) -> list[int]:
    return page.evaluate("(id) => window.hubDebug.offsets[id] || []", task_id)


def assert_contiguous(offsets: list[int]) -> None:
    assert offsets, "the row applied no publications"
    assert offsets == list(range(offsets[0], offsets[0] + len(offsets))), offsets


def test_demo_task_reaches_100_percent(open_page: Callable[[], Page],
                                       page_errors: list[str]) -> None:
    page = open_page()
    sign_in(page, "alice")
    record = run_demo(page, steps=20, delay=0.15)
    assert record["name"] == "demo.count"
    row = task_row(page, record["id"])
    row.wait_for()
    assert row.locator(".name").text_content() == "demo.count"
    assert record["id"].startswith(row.locator(".id").text_content())
    wait_succeeded(page, record["id"])
    assert_contiguous(applied_offsets(page, record["id"]))
    assert page_errors == []


def test_schedule_feed_shows_beat_runs(open_page: Callable[[], Page],
                                       page_errors: list[str]) -> None:
    page = open_page()
    sign_in(page, "sched-watcher")
    feed = page.locator('[data-testid="schedule-feed"][data-entry="demo-heartbeat"]')
    item = feed.get_by_test_id("schedule-item").first
    item.wait_for(timeout=20_000)
    assert "demo-heartbeat" in item.text_content()
    assert item.get_attribute("data-state") in ("succeeded", "failed", "cancelled")
    assert page_errors == []


def test_forced_reconnect_recovers_without_loss_or_duplicates(
    open_page: Callable[[], Page], page_errors: list[str]
) -> None:
    page = open_page()
    sign_in(page, "reconnecting-rita")
    record = run_demo(page, steps=30, delay=0.1)
    task_id = record["id"]
    wait_percent_at_least(page, task_id, 10)
    # Drop the transport under the client's feet, mid-run; Socket.IO reconnects by itself.
    state_at_close = page.evaluate(
        """(id) => {
             window.hubClient.socket.io.engine.close();
             return document.querySelector(`[data-task-id="${id}"]`).dataset.state;
           }""", task_id)
    assert state_at_close != "succeeded", "the task finished before the connection dropped"
    wait_succeeded(page, task_id)
    statuses = page.evaluate("window.hubDebug.statuses")
    assert "reconnecting" in statuses
    assert statuses[-1] == "connected"
    assert_contiguous(applied_offsets(page, task_id))
    # Recovered from history: the only snapshot is the one of the first subscribe.
    assert page.evaluate("(id) => window.hubDebug.snapshots[id]", task_id) == 1
    assert page_errors == []


def test_lost_history_resyncs_from_the_snapshot(
    open_page: Callable[[], Page], page_errors: list[str]
) -> None:
    page = open_page()
    sign_in(page, "forgetful-fred")
    record = run_demo(page, steps=30, delay=0.1)
    task_id = record["id"]
    wait_percent_at_least(page, task_id, 10)
    # Pretend the channel's history was lost while we were away: our position is in an
    # epoch the hub no longer has, so resubscribing cannot recover (recovered: false).
    page.evaluate(
        """(id) => {
             const sub = window.hubClient.subs.get(`task:${id}`);
             sub.pos = { offset: sub.pos.offset, epoch: "gone" };
             window.hubClient.socket.io.engine.close();
           }""", task_id)
    wait_succeeded(page, task_id)
    assert page.evaluate("(id) => window.hubDebug.snapshots[id]", task_id) == 2
    offsets = applied_offsets(page, task_id)
    assert offsets == sorted(set(offsets)), "no duplicates, no reordering"
    assert page_errors == []


def test_second_tab_sees_the_task_finish(open_page: Callable[[], Page],
                                         page_errors: list[str]) -> None:
    first, second = open_page(), open_page()
    sign_in(first, "two-tabs-tom")
    sign_in(second, "two-tabs-tom")
    record = run_demo(first, steps=10, delay=0.1)
    # The second tab never heard of this task: the final event reaches it on user:<sub>.
    wait_succeeded(second, record["id"])
    wait_succeeded(first, record["id"])
    assert page_errors == []


def test_token_fragment_signs_in(open_page: Callable[[], Page], page_errors: list[str]) -> None:
    token, _ = tokens.issue(JWT_SECRET, "fragment-fay", 600)
    page = open_page()
    page.goto(f"/#token={token}")
    page.wait_for_selector('[data-testid="conn-status"][data-status="connected"]')
    assert page.get_by_test_id("current-user").text_content() == "fragment-fay"
    assert "token" not in page.url, "the token stays out of the address bar and history"
    assert page_errors == []


def test_expiring_token_is_refreshed(open_page: Callable[[], Page],
                                     page_errors: list[str]) -> None:
    # 33 s to live: the hub warns (token.expiring) 30 s before expiry, so almost at once.
    token, exp = tokens.issue(JWT_SECRET, "refreshing-ravi", 33)
    page = open_page()
    page.evaluate(CONNECT_WITH_REFRESH, [token, "refreshing-ravi"])
    page.wait_for_function("() => window.testClient.expiresAt !== null", timeout=WAIT_MS)
    assert page.evaluate("window.testClient.token") != token
    assert page.evaluate("window.testClient.status") == "connected"
    assert page_errors == []


def test_expired_token_reconnects_with_a_fresh_one(open_page: Callable[[], Page],
                                                   page_errors: list[str]) -> None:
    # Refused at connect (unauthorized): the client asks getToken and tries again.
    token, _ = tokens.issue(JWT_SECRET, "late-lena", -60)
    page = open_page()
    page.evaluate(CONNECT_WITH_REFRESH, [token, "late-lena"])
    page.wait_for_function("() => window.testClient.status === 'connected'", timeout=WAIT_MS)
    assert page.evaluate("window.testClient.token") != token
    assert page_errors == []
