"""The socket protocol's edges on a real hub: forged reserved events, floods, the owner's cancel.

A raw Engine.IO/Socket.IO client speaks the wire protocol itself, so it can send what
python-socketio's client refuses to (an event named `disconnect`) and flood as fast as the
socket takes frames.
"""

import json
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import socketio
import websocket

from tests.support.stack import Stack, own_stack, wait_until

pytestmark = pytest.mark.integration


class RawSocket:
    """Socket.IO v5 over a bare websocket: connect, emit with ack ids, read what arrives."""

    def __init__(self, base_url: str, auth: dict[str, Any]) -> None:
        url = base_url.replace("http://", "ws://") + "/socket.io/?EIO=4&transport=websocket"
        self.ws = websocket.create_connection(url, timeout=10)
        assert self.ws.recv().startswith("0")  # engine.io open
        self.ws.send("40" + json.dumps(auth))
        self.connected = self.ws.recv()
        self.next_id = 0

    def emit(self, event: str, data: Any) -> int:
        self.next_id += 1
        self.ws.send(f"42{self.next_id}" + json.dumps([event, data]))
        return self.next_id

    def read(self) -> str | None:
        """The next Socket.IO packet (answering pings); None once the server closed."""
        while True:
            try:
                frame = self.ws.recv()
            except (websocket.WebSocketConnectionClosedException, OSError):
                return None
            if not frame:
                return None
            if frame == "2":
                self.ws.send("3")
                continue
            return frame[1:] if frame.startswith("4") else frame

    def ack(self, ack_id: int) -> Any:
        """Read until the ack of `ack_id`, returning its payload; events are kept aside."""
        while (packet := self.read()) is not None:
            if packet.startswith(f"3{ack_id}["):
                return json.loads(packet[len(f"3{ack_id}"):])[0]
        raise AssertionError("the server closed before acking")

    def call(self, event: str, data: Any) -> Any:
        return self.ack(self.emit(event, data))

    def close(self) -> None:
        self.ws.close()


@pytest.fixture
def small_cap_stack(redis_url: str, tmp_path: Path) -> Iterator[Stack]:
    with own_stack(redis_url, tmp_path, db_index=11, HUB_MAX_CONNECTIONS_PER_USER="1") as stack:
        yield stack


def test_forged_disconnect_keeps_the_cap_and_the_expiry(small_cap_stack: Stack) -> None:
    stack = small_cap_stack
    raw = RawSocket(stack.base_url, {"token": stack.token("alice", ttl=4)})
    assert raw.connected.startswith("40{")
    for forged in ("disconnect", "connect"):
        reply = raw.call(forged, {})
        assert reply["ok"] is False and reply["error"]["code"] == "not_found", reply
    # Still counted: a second connection of alice is over the cap of one.
    second = stack.client("alice", connect=False)
    with pytest.raises(socketio.exceptions.ConnectionError):
        second.connect()
    assert second.connect_error["data"]["code"] == "rate_limited", second.connect_error
    # Still in the personal room, and cut off when the token expires.
    assert stack.post("/api/v1/publish", {"channel": "user:alice", "type": "custom.ping",
                                          "data": 1}).status_code == 202
    packets = []
    while (packet := raw.read()) is not None:  # until the hub closes the transport
        packets.append(packet)
    assert any('"custom.ping"' in p for p in packets), packets
    assert any(p.startswith("2[\"connection.closing\"") and "unauthorized" in p for p in packets)
    assert packets[-1] == "1"  # DISCONNECT: the expired connection is gone


def test_a_flood_is_cut_off_and_others_keep_their_acks(fresh_clients: Stack) -> None:
    stack = fresh_clients
    bystander = stack.client("bob")
    flooder = RawSocket(stack.base_url, {"token": stack.token("mallory")})
    answered: list[str] = []
    reader = threading.Thread(target=lambda: answered.extend(
        iter(flooder.read, None)), daemon=True)
    reader.start()
    sent = 0
    try:
        for _ in range(20_000):
            flooder.emit("no.such.event", {"n": sent})
            sent += 1
    except (websocket.WebSocketException, OSError):
        pass  # the hub closed the flooder's transport mid-flood
    reader.join(timeout=30)
    assert not reader.is_alive(), "the flooder was never disconnected"
    closing = [p for p in answered if p.startswith('2["connection.closing"')]
    assert closing and "rate_limited" in closing[0]
    acks = [p for p in answered if p.startswith("3")]
    assert 0 < len(acks) < sent  # refused with error acks, then no longer read at all
    assert all('"ok":false' in p for p in acks)
    assert bystander.call("subscribe", {"channel": "public:flood"})["ok"]
    # The flooder may come back, and recovers its personal channel.
    again = stack.client("mallory")
    assert again.call("subscribe", {"channel": "public:flood"})["ok"]


def test_the_owner_cancels_her_task_from_the_browser(fresh_clients: Stack) -> None:
    stack = fresh_clients
    alice, bob = stack.client("alice"), stack.client("bob")
    task = stack.submit("alice", steps=40, delay=0.25)
    channel = f"task:{task['id']}"
    assert alice.call("subscribe", {"channel": channel})["ok"]
    stack.wait_task(task["id"], {"started"})
    assert bob.call("tasks.cancel", {"task_id": task["id"]})["error"]["code"] == "forbidden"
    assert alice.call("tasks.cancel", {"task_id": task["id"]}) == {"ok": True}
    alice.wait_for(lambda c: [p for p in c.publications(channel) if p["type"] == "task.cancelled"],
                   what="task.cancelled")
    assert wait_until(lambda: stack.get(f"/api/v1/tasks/{task['id']}").json()["state"]
                      == "cancelled")
    again = alice.call("tasks.cancel", {"task_id": task["id"]})
    assert again["error"]["code"] == "invalid"
