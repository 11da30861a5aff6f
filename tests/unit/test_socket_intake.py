"""Client events: only SPEC section 5's names are dispatched; every event counts against the
rate; a connection that keeps flooding is closed with a reason (events.intake)."""

import dataclasses
import time
from collections.abc import Callable
from typing import Any

import pytest
from flask import Flask
from flask_socketio import SocketIOTestClient

from events import current_publisher, intake
from models import Task, db

Client = Callable[..., SocketIOTestClient]


def ack(sock: SocketIOTestClient, event: str, data: Any = None) -> Any:
    return sock.emit(event, data, callback=True)


def code(reply: Any) -> str | None:
    return reply.get("error", {}).get("code") if isinstance(reply, dict) else None


def wait_for(predicate: Callable[[], Any], timeout: float = 5) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.02)
    return predicate()


@pytest.mark.parametrize("forged", ["disconnect", "connect"])
def test_reserved_names_are_refused_and_the_connection_stays_whole(
        app: Flask, socket_client: Client, forged: str) -> None:
    namespace = app.extensions["hub.namespace"]
    namespace.settings = dataclasses.replace(namespace.settings, max_connections_per_user=1)
    sock = socket_client("alice")
    assert code(ack(sock, forged, {})) == "not_found"
    # Still registered: counted against the per-user cap, and still in its personal room.
    assert len(namespace.connections) == 1 and namespace.per_user["alice"] == 1
    assert not socket_client("alice").is_connected()
    sock.get_received()
    with app.app_context():
        current_publisher().publish("user:alice", "custom.ping", {"n": 1})
    assert wait_for(lambda: [m for m in sock.get_received() if m["name"] == "custom.ping"])


def test_forged_disconnect_cannot_dodge_token_expiry(app: Flask, socket_client: Client) -> None:
    from tests.conftest import user_token

    sock = socket_client("alice", token=user_token("alice", ttl=1))
    assert code(ack(sock, "disconnect", "io client disconnect")) == "not_found"
    assert wait_for(lambda: not sock.is_connected(), timeout=5)


def test_unknown_names_count_against_the_rate(app: Flask, socket_client: Client) -> None:
    namespace = app.extensions["hub.namespace"]
    namespace.settings = dataclasses.replace(namespace.settings, event_rate=1, event_burst=5)
    sock = socket_client("alice")
    assert [code(ack(sock, "no.such.event", {})) for _ in range(5)] == ["not_found"] * 5
    assert code(ack(sock, "subscribe", {"channel": "public:x"})) == "rate_limited"


def test_malformed_event_packets_get_an_error_ack(app: Flask, socket_client: Client) -> None:
    sock = socket_client("alice")
    server = app.extensions["socketio"].server
    replies: list[Any] = []
    original = server._send_packet
    server._send_packet = lambda eio_sid, pkt: replies.append(pkt.data)  # type: ignore
    try:
        # An EVENT packet whose payload is not [name, ...]: python-socketio would index it.
        server._handle_eio_message(sock.eio_sid, '21{"subscribe":1}')
        server._handle_eio_message(sock.eio_sid, "22[]")
    finally:
        server._send_packet = original  # type: ignore
    assert [code(reply[0]) for reply in replies] == ["not_found", "not_found"]
    assert sock.is_connected()


def test_a_flooding_connection_is_closed_with_a_reason(app: Flask, socket_client: Client) -> None:
    namespace = app.extensions["hub.namespace"]
    namespace.settings = dataclasses.replace(namespace.settings, event_rate=2, event_burst=4)
    flooder, bystander = socket_client("mallory"), socket_client("bob")
    replies = []
    for _ in range(100):
        if not flooder.is_connected():
            break
        replies.append(ack(flooder, "unsubscribe", {"channel": "public:x"}))
    codes = [code(reply) for reply in replies]
    assert codes[:4] == [None] * 4 and "rate_limited" in codes
    assert None in replies[4:]  # past its strikes: dropped without an ack
    assert wait_for(lambda: not flooder.is_connected())
    # The test client keeps what it received after a disconnect in its queue.
    closing = [m["args"][0] for m in flooder.queue if m["name"] == "connection.closing"]
    assert closing and closing[0]["code"] == "rate_limited"
    assert "mallory" not in namespace.per_user
    assert bystander.is_connected() and ack(bystander, "subscribe", {"channel": "public:x"})["ok"]
    assert socket_client("mallory").is_connected()  # it may come back


def test_owner_cancels_her_task_from_the_socket(app: Flask, socket_client: Client) -> None:
    cancelled: list[str] = []
    namespace = app.extensions["hub.namespace"]
    namespace.cancel_task = lambda task_id: cancelled.append(task_id) or True
    with app.app_context():
        db.session.add(Task(id="t-alice", name="demo.count", user="alice", args={}))
        db.session.commit()
    alice, bob = socket_client("alice"), socket_client("bob")
    assert code(ack(bob, "tasks.cancel", {"task_id": "t-alice"})) == "forbidden"
    assert code(ack(alice, "tasks.cancel", {"task_id": "nope"})) == "not_found"
    assert code(ack(alice, "tasks.cancel", {"id": "t-alice"})) == "invalid"
    assert ack(alice, "tasks.cancel", {"task_id": "t-alice"}) == {"ok": True}
    assert cancelled == ["t-alice"]
    namespace.cancel_task = lambda task_id: False
    assert code(ack(alice, "tasks.cancel", {"task_id": "t-alice"})) == "invalid"


def test_the_intake_checks_its_hook(app: Flask) -> None:
    server = app.extensions["socketio"].server
    intake.check_hooks(server)

    class Changed(type(server)):  # type: ignore[misc]
        def _handle_event(self, eio_sid: str, namespace: str, data: Any) -> None:  # type: ignore
            pass

    changed = Changed.__new__(Changed)
    changed.packet_class = server.packet_class
    with pytest.raises(intake.IntakeHookMissing, match="python-socketio"):
        intake.check_hooks(changed)
