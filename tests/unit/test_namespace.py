"""The Socket.IO namespace through Flask-SocketIO's test client (in-memory backend)."""

import dataclasses
import time
from collections.abc import Callable
from typing import Any

import jwt
from flask import Flask
from flask_socketio import SocketIOTestClient

from events import current_publisher
from models import Task, db
from tests.conftest import JWT_SECRET

Client = Callable[..., SocketIOTestClient]


def ack(sock: SocketIOTestClient, event: str, data: Any = None) -> dict[str, Any]:
    return sock.emit(event, data, callback=True)


def publish(app: Flask, channel: str, event_type: str, data: Any) -> dict[str, Any]:
    with app.app_context():
        return current_publisher().publish(channel, event_type, data)


def received(sock: SocketIOTestClient, event_type: str | None = None) -> list[dict[str, Any]]:
    return [m["args"][0] for m in sock.get_received()
            if event_type is None or m["name"] == event_type]


def make_task(app: Flask, task_id: str, user: str) -> None:
    with app.app_context():
        db.session.add(Task(id=task_id, name="demo.count", user=user, args={}))
        db.session.commit()


def test_connect_needs_a_valid_token(socket_client: Client) -> None:
    assert not socket_client(token=None).is_connected()
    assert not socket_client(token="garbage").is_connected()
    expired = jwt.encode({"sub": "a", "aud": "hub", "exp": int(time.time()) - 1}, JWT_SECRET)
    assert not socket_client(token=expired).is_connected()
    assert not socket_client(since={"offset": -1, "epoch": "x"}).is_connected()
    assert socket_client("alice").is_connected()


def test_personal_channel_is_joined_on_connect(app: Flask, socket_client: Client) -> None:
    alice, bob = socket_client("alice"), socket_client("bob")
    publish(app, "user:alice", "custom.hello", {"to": "alice"})
    got = received(alice, "custom.hello")
    assert [e["data"] for e in got] == [{"to": "alice"}]
    assert got[0]["channel"] == "user:alice" and got[0]["offset"] == 1
    assert received(bob) == []


def test_subscribe_rules_in_acks(app: Flask, socket_client: Client) -> None:
    make_task(app, "t-alice", "alice")
    make_task(app, "t-bob", "bob")
    alice = socket_client("alice")
    assert ack(alice, "subscribe", {"channel": "user:bob"})["error"]["code"] == "forbidden"
    assert ack(alice, "subscribe", {"channel": "task:t-bob"})["error"]["code"] == "forbidden"
    assert ack(alice, "subscribe", {"channel": "task:nope"})["error"]["code"] == "not_found"
    assert ack(alice, "subscribe", {"channel": "private:x"})["error"]["code"] == "forbidden"
    assert ack(alice, "subscribe", {"channel": "bad name"})["error"]["code"] == "invalid"
    assert ack(alice, "subscribe", "public:x")["error"]["code"] == "invalid"
    assert ack(alice, "subscribe", {"channel": 5})["error"]["code"] == "invalid"
    bad_since = ack(alice, "subscribe", {"channel": "public:x", "since": {"offset": "1"}})
    assert bad_since["error"]["code"] == "invalid"
    assert ack(alice, "no.such.event", {})["error"]["code"] == "not_found"
    own = ack(alice, "subscribe", {"channel": "task:t-alice"})
    assert own["ok"] and own["snapshot"]["id"] == "t-alice" and own["snapshot"]["state"] == "queued"
    public = ack(alice, "subscribe", {"channel": "public:x"})
    assert public == {"ok": True, "channel": "public:x", "offset": 0, "epoch": public["epoch"],
                      "recovered": False, "publications": []}


def test_channels_claim_grants_more(socket_client: Client) -> None:
    from tests.conftest import user_token

    sock = socket_client("alice", token=user_token("alice", channels=["org:acme:*"]))
    assert ack(sock, "subscribe", {"channel": "org:acme:ops"})["ok"]
    assert not ack(sock, "subscribe", {"channel": "org:other"})["ok"]


def test_live_delivery_and_unsubscribe(app: Flask, socket_client: Client) -> None:
    sock = socket_client("alice")
    assert ack(sock, "subscribe", {"channel": "public:news"})["ok"]
    publish(app, "public:news", "news.item", {"n": 1})
    assert [e["data"]["n"] for e in received(sock, "news.item")] == [1]
    assert ack(sock, "unsubscribe", {"channel": "public:news"}) == {"ok": True}
    publish(app, "public:news", "news.item", {"n": 2})
    assert received(sock, "news.item") == []


def test_the_personal_channel_cannot_be_left(app: Flask, socket_client: Client) -> None:
    sock = socket_client("alice")
    refused = ack(sock, "unsubscribe", {"channel": "user:alice"})
    assert refused["ok"] is False and refused["error"]["code"] == "forbidden"
    publish(app, "user:alice", "note.item", {"n": 1})
    assert [e["data"]["n"] for e in received(sock, "note.item")] == [1]


def test_subscribe_since_recovers_exactly_the_missed(app: Flask, socket_client: Client) -> None:
    sock = socket_client("alice")
    first = ack(sock, "subscribe", {"channel": "public:feed"})
    for n in range(3):
        publish(app, "public:feed", "feed.item", {"n": n})
    seen = received(sock, "feed.item")
    last = seen[-1]
    sock.disconnect()
    for n in range(3, 6):
        publish(app, "public:feed", "feed.item", {"n": n})
    again = socket_client("alice")
    rec = ack(again, "subscribe", {"channel": "public:feed",
                                   "since": {"offset": last["offset"], "epoch": first["epoch"]}})
    assert rec["recovered"] is True
    assert [p["data"]["n"] for p in rec["publications"]] == [3, 4, 5]
    assert [p["offset"] for p in rec["publications"]] == [4, 5, 6]
    lost = ack(again, "subscribe", {"channel": "public:feed",
                                    "since": {"offset": 1, "epoch": "another-epoch"}})
    assert lost["recovered"] is False and lost["publications"] == []
    assert lost["offset"] == 6


def test_connect_with_since_replays_the_personal_channel(app: Flask,
                                                         socket_client: Client) -> None:
    publish(app, "user:alice", "custom.a", {"n": 1})
    with app.app_context():
        epoch = current_publisher().recover("user:alice", None).position.epoch
    publish(app, "user:alice", "custom.a", {"n": 2})
    publish(app, "user:alice", "custom.a", {"n": 3})
    sock = socket_client("alice", since={"offset": 1, "epoch": epoch})
    got: list[dict[str, Any]] = []
    deadline = time.monotonic() + 5
    while len(got) < 2 and time.monotonic() < deadline:
        got += received(sock, "custom.a")
        time.sleep(0.02)
    assert [e["data"]["n"] for e in got] == [2, 3]
    publish(app, "user:alice", "custom.a", {"n": 4})
    deadline = time.monotonic() + 5
    while len(got) < 3 and time.monotonic() < deadline:
        got += received(sock, "custom.a")
        time.sleep(0.02)
    assert [e["data"]["n"] for e in got] == [2, 3, 4]


def test_event_rate_and_subscription_limits(app: Flask, socket_client: Client) -> None:
    namespace = app.extensions["hub.namespace"]
    namespace.settings = dataclasses.replace(namespace.settings, max_subscriptions=3)
    sock = socket_client("alice")
    codes = [ack(sock, "subscribe", {"channel": f"public:c{i}"}).get("error", {}).get("code")
             for i in range(4)]
    assert codes == [None, None, "forbidden", "forbidden"]  # user:alice counts as one
    results = [ack(sock, "unsubscribe", {"channel": "public:c0"}) for _ in range(60)]
    assert any(r.get("error", {}).get("code") == "rate_limited" for r in results)


def test_connections_per_user_are_limited(app: Flask, socket_client: Client) -> None:
    namespace = app.extensions["hub.namespace"]
    namespace.settings = dataclasses.replace(namespace.settings, max_connections_per_user=2)
    assert socket_client("alice").is_connected() and socket_client("alice").is_connected()
    assert not socket_client("alice").is_connected()
    assert socket_client("bob").is_connected()


def test_refresh_and_expiry(app: Flask, socket_client: Client) -> None:
    soon = jwt.encode({"sub": "alice", "aud": "hub", "exp": int(time.time()) + 2}, JWT_SECRET)
    kept = socket_client("alice", token=soon)
    dropped = socket_client("alice", token=soon)
    from tests.conftest import user_token

    assert ack(kept, "refresh", {"token": user_token("bob")})["error"]["code"] == "forbidden"
    assert ack(kept, "refresh", {"token": "junk"})["error"]["code"] == "unauthorized"
    refreshed = ack(kept, "refresh", {"token": user_token("alice", ttl=600)})
    assert refreshed["ok"] and refreshed["expires_at"].endswith("Z")
    deadline = time.monotonic() + 8
    while dropped.is_connected() and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not dropped.is_connected()
    assert kept.is_connected()
