"""The inbox in a real browser: notifications from a service appear live in every tab,
reading one clears the badge everywhere, and nothing sent while the connection is down
(recoverable or not) is lost or shown twice."""

import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import requests
from playwright.sync_api import Page

from tests.browser.test_dashboard import WAIT_MS, run_demo, sign_in, wait_succeeded

pytestmark = pytest.mark.browser


@pytest.fixture(scope="session")
def service_key(hub_url: str, hub_log: Path) -> str:
    """The development service key the launcher wrote into its instance directory."""
    return (hub_log.parent / "instance" / "dev-service-key").read_text().strip()


@pytest.fixture
def notify(hub_url: str, service_key: str) -> Callable[..., list[int]]:
    """Send a notification as a service, the way a backend would; returns the new ids."""
    session = requests.Session()
    session.headers["Authorization"] = f"Bearer {service_key}"

    def send(user: str, title: str, **fields: Any) -> list[int]:
        response = session.post(f"{hub_url}/api/v1/notifications",
                                json={"user": user, "title": title, **fields}, timeout=10)
        assert response.status_code == 201, response.text
        return response.json()["ids"]

    return send


def unique_user(name: str) -> str:
    return f"{name}-{uuid.uuid4().hex[:8]}"


def item_selector(notification_id: int, read: bool | None = None) -> str:
    selector = f'[data-testid="notification-item"][data-id="{notification_id}"]'
    return selector if read is None else f'{selector}[data-read="{str(read).lower()}"]'


def wait_badge(page: Page, count: int) -> None:
    page.wait_for_selector(f'[data-testid="unread-badge"][data-count="{count}"]',
                           timeout=WAIT_MS)


def item_ids(page: Page) -> list[int]:
    return [int(i) for i in page.eval_on_selector_all(
        '[data-testid="notification-item"]', "els => els.map((el) => el.dataset.id)")]


def sign_in_with_inbox(page: Page, user: str) -> None:
    """Sign in and wait until the first inbox page is in (the badge has its count)."""
    with page.expect_response(lambda r: "/api/v1/me/notifications" in r.url):
        sign_in(page, user)
    page.wait_for_function("() => window.hubClient.inbox.unreadCount !== null")


def test_notification_reaches_both_tabs_and_reading_it_syncs_them(
    open_page: Callable[[], Page], page_errors: list[str], notify: Callable[..., list[int]]
) -> None:
    user = unique_user("two-tab-tina")
    first, second = open_page(), open_page()
    sign_in_with_inbox(first, user)
    sign_in_with_inbox(second, user)
    wait_badge(first, 0)
    [nid] = notify(user, "Build finished", body="main is green", category="ci")
    for page in (first, second):
        page.wait_for_selector(item_selector(nid, read=False), timeout=WAIT_MS)
        wait_badge(page, 1)
    item = first.locator(item_selector(nid))
    assert "Build finished" in item.text_content()
    assert "main is green" in item.text_content()
    first.locator(item_selector(nid)).click()
    # The other tab hears notification.read on user:<sub>: no reload.
    second.wait_for_selector(item_selector(nid, read=True), timeout=WAIT_MS)
    wait_badge(second, 0)
    first.wait_for_selector(item_selector(nid, read=True), timeout=WAIT_MS)
    wait_badge(first, 0)
    # "Mark all read" in the second tab clears what arrives next in both.
    ids = [notify(user, f"Deploy {n}")[0] for n in range(2)]
    wait_badge(first, 2)
    wait_badge(second, 2)
    second.get_by_test_id("mark-all-read").click()
    for page in (first, second):
        wait_badge(page, 0)
        for notification_id in ids:
            page.wait_for_selector(item_selector(notification_id, read=True), timeout=WAIT_MS)
    assert page_errors == []


def test_forced_reconnect_loses_no_notification(
    open_page: Callable[[], Page], page_errors: list[str], notify: Callable[..., list[int]]
) -> None:
    user = unique_user("reconnecting-rosa")
    page = open_page()
    sign_in_with_inbox(page, user)
    page.evaluate("window.hubClient.socket.io.engine.close()")
    sent = [notify(user, f"While away {n}")[0] for n in range(3)]
    # Socket.IO waits >= 0.5 s before reconnecting: all three were sent during the gap.
    assert page.evaluate("window.hubClient.status") == "reconnecting"
    for notification_id in sent:
        page.wait_for_selector(item_selector(notification_id, read=False), timeout=WAIT_MS)
    page.wait_for_selector('[data-testid="conn-status"][data-status="connected"]')
    wait_badge(page, 3)
    ids = item_ids(page)
    assert sorted(ids) == sorted(sent), "each exactly once"
    assert ids == sorted(ids, reverse=True), "newest first"
    assert "reconnecting" in page.evaluate("window.hubDebug.statuses")
    assert page_errors == []


def test_lost_history_is_filled_from_rest(
    open_page: Callable[[], Page], page_errors: list[str], notify: Callable[..., list[int]]
) -> None:
    user = unique_user("forgetful-fiona")
    page = open_page()
    sign_in_with_inbox(page, user)
    [before] = notify(user, "Before the gap")
    page.wait_for_selector(item_selector(before), timeout=WAIT_MS)
    gap_fills: list[str] = []
    page.on("request", lambda r: "since_id=" in r.url and gap_fills.append(r.url))
    # Our position on user:<sub> is in an epoch the hub never had: recovery at connect and
    # at resubscribe fails (recovered: false), so only the since_id gap fill can find them.
    page.evaluate("""() => {
        const sub = window.hubClient.subs.get(window.hubClient.personalChannel);
        sub.pos = { offset: sub.pos.offset, epoch: "gone" };
        window.hubClient.socket.io.engine.close();
    }""")
    sent = [notify(user, f"During the gap {n}")[0] for n in range(3)]
    for notification_id in sent:
        page.wait_for_selector(item_selector(notification_id, read=False), timeout=WAIT_MS)
    wait_badge(page, 4)
    assert sorted(item_ids(page)) == sorted([before, *sent]), "each exactly once"
    assert any(f"since_id={before}" in url for url in gap_fills), \
        f"the inbox asked REST for what it missed: {gap_fills}"
    # Live delivery still works after the resync.
    [after] = notify(user, "After the gap")
    page.wait_for_selector(item_selector(after), timeout=WAIT_MS)
    wait_badge(page, 5)
    assert sorted(item_ids(page)) == sorted([before, *sent, after])
    assert page_errors == []


def test_finished_task_notifies_its_owner(open_page: Callable[[], Page],
                                          page_errors: list[str]) -> None:
    user = unique_user("notified-nora")
    page = open_page()
    sign_in_with_inbox(page, user)
    record = run_demo(page, steps=3, delay=0.05)
    wait_succeeded(page, record["id"])
    item = page.locator('[data-testid="notification-item"]',
                        has_text="demo.count succeeded")
    item.wait_for(timeout=WAIT_MS)
    assert item.get_attribute("data-read") == "false"
    wait_badge(page, 1)
    notification = page.evaluate("window.hubClient.inbox.items[0]")
    assert notification["data"] == {"task_id": record["id"], "state": "succeeded"}
    assert page_errors == []


def test_older_pages_load_on_demand(open_page: Callable[[], Page], page_errors: list[str],
                                    notify: Callable[..., list[int]]) -> None:
    user = unique_user("paging-paula")
    ids = [notify(user, f"Old {n}")[0] for n in range(25)]
    page = open_page()
    sign_in_with_inbox(page, user)
    wait_badge(page, 25)
    assert item_ids(page) == sorted(ids, reverse=True)[:20]
    page.get_by_test_id("load-more").click()
    page.wait_for_function(
        "() => document.querySelectorAll('[data-testid=\"notification-item\"]').length === 25")
    assert item_ids(page) == sorted(ids, reverse=True)
    assert page.get_by_test_id("load-more").is_hidden()
    assert page_errors == []


def test_screenshot_of_the_inbox(open_page: Callable[[], Page], page_errors: list[str],
                                 notify: Callable[..., list[int]], tmp_path: Path) -> None:
    """A look at the whole dashboard with a few notifications, one of them read."""
    user = unique_user("looking-lou")
    page = open_page()
    sign_in_with_inbox(page, user)
    first = notify(user, "Weekly report ready", body="March numbers are in", category="reports")[0]
    notify(user, "Invoice #1042 paid")
    notify(user, "New comment on 'Q2 plan'", body="Sam: looks good, ship it")
    wait_badge(page, 3)
    page.locator(item_selector(first)).click()
    wait_badge(page, 2)
    record = run_demo(page, steps=3, delay=0.05)
    wait_succeeded(page, record["id"])
    wait_badge(page, 3)
    path = tmp_path / "inbox.png"
    page.screenshot(path=str(path), full_page=True)
    print(f"screenshot: {path}")
    assert path.stat().st_size > 0
    assert page_errors == []
