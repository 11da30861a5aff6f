"""Inbox REST and the notifications.read socket event (SQLite, in-memory history)."""

from collections.abc import Callable
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from flask_socketio import SocketIOTestClient
from sqlalchemy import func, select

from models import Notification, db
from tests.conftest import user_token


def as_user(user: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {user_token(user)}"}


def send(client: FlaskClient, auth: dict[str, str], **body: Any) -> list[int]:
    response = client.post("/api/v1/notifications", json={"title": "hi", **body}, headers=auth)
    assert response.status_code == 201, response.get_data(as_text=True)
    return response.get_json()["ids"]


def test_notify_one_or_many_and_validation(client: FlaskClient, auth: dict[str, str]) -> None:
    assert len(send(client, auth, user="alice")) == 1
    assert len(send(client, auth, users=["a", "b", "b", "c"])) == 3
    for bad in ({"title": "x"}, {"title": "x", "user": "a", "users": ["b"]},
                {"user": "a"}, {"user": "a", "title": ""}, {"user": "a b", "title": "x"},
                {"users": [], "title": "x"}, {"user": "a", "title": "x", "extra": 1}):
        response = client.post("/api/v1/notifications", json=bad, headers=auth)
        assert response.status_code == 422, bad
        assert response.get_json()["errors"]


def test_idempotency_key_dedupes_retries(client: FlaskClient, auth: dict[str, str],
                                         socket_client: Callable[..., SocketIOTestClient]) -> None:
    alice = socket_client("alice")
    first = send(client, auth, users=["alice", "bob"], idempotency_key="k1")
    again = send(client, auth, users=["alice", "bob"], idempotency_key="k1")
    assert first == again
    created = [m for m in alice.get_received() if m["name"] == "notification.created"]
    assert len(created) == 1
    event = created[0]["args"][0]["data"]
    assert event["unread_count"] == 1 and event["notification"]["id"] == first[0]
    inbox = client.get("/api/v1/notifications?user=alice", headers=auth).get_json()
    assert len(inbox["items"]) == 1


def test_inbox_pagination_unread_and_isolation(client: FlaskClient,
                                               auth: dict[str, str]) -> None:
    ids = [send(client, auth, user="alice", body=str(n))[0] for n in range(7)]
    send(client, auth, user="bob")
    me = as_user("alice")
    seen: list[int] = []
    page = client.get("/api/v1/me/notifications?limit=3", headers=me).get_json()
    while True:
        seen += [item["id"] for item in page["items"]]
        assert all(item["user"] == "alice" for item in page["items"])
        if page["next_cursor"] is None:
            break
        page = client.get(f"/api/v1/me/notifications?limit=3&after_id={page['next_cursor']}",
                          headers=me).get_json()
    assert seen == list(reversed(ids)) and page["unread_count"] == 7
    newer = client.get(f"/api/v1/me/notifications?since_id={ids[4]}", headers=me).get_json()
    assert [i["id"] for i in newer["items"]] == [ids[6], ids[5]]
    read = client.post("/api/v1/me/notifications/read", json={"ids": ids[:2]}, headers=me)
    assert read.get_json() == {"unread_count": 5}
    unread = client.get("/api/v1/me/notifications?unread=true&limit=100", headers=me).get_json()
    assert sorted(i["id"] for i in unread["items"]) == ids[2:]
    service_view = client.get("/api/v1/notifications?user=alice&unread=1", headers=auth)
    assert service_view.get_json()["unread_count"] == 5
    assert client.get("/api/v1/notifications", headers=auth).status_code == 422


def test_foreign_ids_are_404_not_403(client: FlaskClient, auth: dict[str, str]) -> None:
    mine = send(client, auth, user="alice")[0]
    theirs = send(client, auth, user="bob")[0]
    me = as_user("alice")
    assert client.get(f"/api/v1/me/notifications/{mine}", headers=me).status_code == 200
    assert client.get(f"/api/v1/me/notifications/{theirs}", headers=me).status_code == 404
    assert client.get("/api/v1/me/notifications/999999", headers=me).status_code == 404
    response = client.post("/api/v1/me/notifications/read", json={"ids": [mine, theirs]},
                           headers=me)
    assert response.status_code == 404
    bob = client.get("/api/v1/me/notifications", headers=as_user("bob")).get_json()
    assert bob["unread_count"] == 1  # nothing of bob's changed
    assert client.post("/api/v1/me/notifications/read", json={}, headers=me).status_code == 422
    assert client.post("/api/v1/me/notifications/read", json={"ids": [mine], "all": True},
                       headers=me).status_code == 422


def test_read_over_socket_syncs_other_tabs(client: FlaskClient, auth: dict[str, str],
                                           socket_client: Callable[..., SocketIOTestClient]
                                           ) -> None:
    tab1, tab2 = socket_client("alice"), socket_client("alice")
    ids = send(client, auth, users=["alice"]) + send(client, auth, users=["alice"])
    tab2.get_received()
    ack = tab1.emit("notifications.read", {"ids": [ids[0]]}, callback=True)
    assert ack == {"ok": True, "unread_count": 1}
    events = [m["args"][0] for m in tab2.get_received() if m["name"] == "notification.read"]
    assert [e["data"] for e in events] == [{"ids": [ids[0]], "all": False, "truncated": False,
                                            "unread_count": 1}]
    again = tab1.emit("notifications.read", {"ids": [ids[0]]}, callback=True)
    assert again == {"ok": True, "unread_count": 1}  # already read: no second event
    assert [m for m in tab2.get_received() if m["name"] == "notification.read"] == []
    assert tab1.emit("notifications.read", {"all": True}, callback=True)["unread_count"] == 0
    for bad in (None, {}, {"ids": []}, {"ids": ["1"]}, {"ids": [True]}, {"all": "yes"},
                {"ids": [1], "all": True}):
        assert tab1.emit("notifications.read", bad, callback=True)["error"]["code"] == "invalid"
    foreign = send(client, auth, user="bob")[0]
    assert tab1.emit("notifications.read", {"ids": [foreign]},
                     callback=True)["error"]["code"] == "not_found"


def test_a_race_on_hubs_own_key_keeps_one_row(app: Flask, monkeypatch: pytest.MonkeyPatch) -> None:
    """Two notify() calls with one key and no service (a task's end, a broadcast batch)
    racing: the loser's INSERT hits the unique index and it takes the winner's row."""
    from tasks import inbox

    with app.app_context():
        first = inbox.notify(["ann"], "done", idempotency_key="task:t1")
        real, calls = inbox._existing, []

        def stale(*args: Any) -> Any:  # the loser looked before the winner committed
            calls.append(args)
            return {} if len(calls) == 1 else real(*args)

        monkeypatch.setattr(inbox, "_existing", stale)
        assert inbox.notify(["ann"], "done", idempotency_key="task:t1") == first
        assert len(calls) == 2
        rows = db.session.scalar(select(func.count()).select_from(Notification).where(
            Notification.idempotency_key == "task:t1"))
        assert rows == 1
