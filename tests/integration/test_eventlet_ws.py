"""Websockets served from eventlet's hub (hub.eventlet_ws): a client that stops reading
gets everything in order once it reads again, or is cut off when it falls too far behind,
and never slows the others; frames are read per RFC 6455."""

import json
import re
import socket
import uuid
from pathlib import Path
from typing import Any

import pytest
import requests
import websocket

from tests.support.stack import LiveClient, Stack, own_stack, wait_until

pytestmark = pytest.mark.integration

# Loopback lets the kernel hold up to ~4 MB (tcp_wmem's max) for a client that reads
# nothing; the sizes below are chosen around that and the 4 MiB backlog limit.
PAYLOAD = "x" * 30000


class RawClient:
    """A bare Socket.IO client on one websocket that reads only when told to, with a tiny
    receive buffer, so the server's writes back up as they would for a stalled browser."""

    def __init__(self, stack: Stack, user: str) -> None:
        url = stack.base_url.replace("http://", "ws://") + "/socket.io/?EIO=4&transport=websocket"
        self.ws = websocket.create_connection(
            url, timeout=30, sockopt=[(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)])
        assert self.ws.recv().startswith("0")  # engine.io OPEN
        self.ws.send("40" + json.dumps({"token": stack.token(user)}))
        assert self.next_packet().startswith("40{")
        self.acks = 0

    def next_packet(self) -> str:
        while True:
            data = self.ws.recv()
            if data == "2":  # engine.io ping
                self.ws.send("3")
                continue
            return data

    def call(self, event: str, data: Any) -> Any:
        self.acks += 1
        self.ws.send(f"42{self.acks}" + json.dumps([event, data]))
        while True:
            packet = self.next_packet()
            if packet.startswith(f"43{self.acks}"):
                return json.loads(packet[len(f"43{self.acks}"):])[0]

    def offsets(self, channel: str, count: int) -> list[int]:
        """Read publications on `channel` until `count` arrived (or the server closes)."""
        seen: list[int] = []
        while len(seen) < count:
            try:
                packet = self.next_packet()
            except websocket.WebSocketConnectionClosedException:
                break
            if not packet:
                break
            match = re.match(r"42\[\"[^\"]+\",(.*)\]$", packet, re.S)
            if match:
                envelope = json.loads(match.group(1))
                if envelope.get("channel") == channel:
                    seen.append(envelope["offset"])
        return seen


def metric(stack: Stack, name: str) -> int:
    text = requests.get(stack.base_url + "/metrics", timeout=10).text
    found = re.search(rf"^{name} (\d+)$", text, re.M)
    assert found, text
    return int(found.group(1))


def publish(stack: Stack, channel: str, count: int) -> None:
    for n in range(count):
        response = stack.post("/api/v1/publish", {"channel": channel, "type": "bulk",
                                                  "data": {"n": n, "pad": PAYLOAD}})
        assert response.status_code == 202, response.text


@pytest.fixture
def eventlet_stack(fresh_clients: Stack) -> Stack:
    if fresh_clients.async_mode != "eventlet":
        pytest.skip("hub-served websockets are the eventlet transport's")
    return fresh_clients


def reader_pair(stack: Stack) -> tuple[str, RawClient, LiveClient]:
    """A fresh channel with two subscribers: a raw one that reads only when asked, and an
    ordinary client that keeps up."""
    channel = f"public:bulk-{uuid.uuid4().hex[:6]}"
    raw = RawClient(stack, "raw")
    assert raw.call("subscribe", {"channel": channel})["ok"]
    live = stack.client("live")
    assert live.call("subscribe", {"channel": channel})["ok"]
    return channel, raw, live


def test_a_stalled_reader_gets_everything_in_order(eventlet_stack: Stack) -> None:
    stack = eventlet_stack
    channel, stalled, live = reader_pair(stack)
    before = metric(stack, "hub_ws_backlogged_total")

    publish(stack, channel, 180)  # ~5.4 MB while `stalled` reads nothing

    # The reader that keeps up is not held back by the stalled one.
    live.wait_for(lambda c: len(c.publications(channel)) == 180)
    assert metric(stack, "hub_ws_backlogged_total") > before  # the flusher path ran
    assert stalled.offsets(channel, 180) == list(range(1, 181))
    stalled.ws.close()


def test_a_reader_too_far_behind_is_cut_off_and_can_recover(eventlet_stack: Stack) -> None:
    stack = eventlet_stack
    channel, slow, live = reader_pair(stack)
    before = metric(stack, "hub_ws_cut_off_total")

    publish(stack, channel, 400)  # ~12 MB: past the kernel's buffers plus the 4 MiB backlog

    live.wait_for(lambda c: len(c.publications(channel)) == 400)
    assert [p["offset"] for p in live.publications(channel)] == list(range(1, 401))
    wait_until(lambda: metric(stack, "hub_ws_cut_off_total") > before, 30,
               what="the slow client to be cut off")
    received = slow.offsets(channel, 400)
    assert len(received) < 400 and received == list(range(1, len(received) + 1))
    # It comes back the way every client does: reconnect and recover from its last offset.
    again = stack.client("raw")
    reply = again.call("subscribe", {"channel": channel, "since": {
        "offset": received[-1] if received else 0,
        "epoch": live.publications(channel)[0]["epoch"]}})
    assert reply["ok"] and reply["recovered"], reply
    recovered = [p["offset"] for p in reply["publications"]]
    assert (received + recovered) == list(range(1, 401))


def test_a_closed_session_is_released_at_once(eventlet_stack: Stack) -> None:
    """engine.io alone forgets closed sessions in a sweep of ~20 s; until then each holds
    its socket and buffers, and every full garbage collection walks them."""
    sessions = lambda: metric(eventlet_stack, "hub_engineio_sessions")  # noqa: E731
    before = sessions()
    leavers = [RawClient(eventlet_stack, f"leaver-{n}") for n in range(6)]
    assert sessions() == before + 6
    for n, leaver in enumerate(leavers):
        if n % 2:
            leaver.ws.close()  # a closing handshake
        else:
            leaver.ws.sock.shutdown(socket.SHUT_RDWR)  # the connection just ends
            leaver.ws.sock.close()
    wait_until(lambda: sessions() <= before, timeout=3, what="closed sessions released")


def test_a_served_websocket_keeps_nothing_of_its_http_request(eventlet_stack: Stack) -> None:
    """The session's environ outlives the request; eventlet's request entries in it reached
    back to the request's handler and its buffers (a cycle: ~30 objects per connection)."""
    handlers = lambda: metric(eventlet_stack, "hub_http_handlers")  # noqa: E731
    before = handlers()
    clients = [RawClient(eventlet_stack, f"holder-{n}") for n in range(8)]
    assert clients[0].call("subscribe", {"channel": "public:holders"})["ok"]
    assert handlers() <= before + 1  # at most the /metrics request itself
    for client in clients:
        client.ws.close()


def test_pings_fragments_and_protocol_errors(eventlet_stack: Stack) -> None:
    """The hub reads websocket frames itself: control frames are answered, a message split
    in fragments is one message, and a frame that breaks RFC 6455 ends the connection."""
    stack = eventlet_stack
    client = RawClient(stack, "frames")
    client.ws.ping(b"are you there")
    opcode, data = client.ws.recv_data(control_frame=True)
    assert (opcode, data) == (websocket.ABNF.OPCODE_PONG, b"are you there")

    message = "421" + json.dumps(["subscribe", {"channel": "public:fragments"}])
    pieces = [message[:5], message[5:20], message[20:]]
    client.ws.send_frame(websocket.ABNF.create_frame(pieces[0], websocket.ABNF.OPCODE_TEXT, 0))
    client.ws.send_frame(websocket.ABNF.create_frame(pieces[1], websocket.ABNF.OPCODE_CONT, 0))
    client.ws.send_frame(websocket.ABNF.create_frame(pieces[2], websocket.ABNF.OPCODE_CONT, 1))
    reply = client.next_packet()
    assert reply.startswith("431") and json.loads(reply[3:])[0]["ok"], reply

    client.ws.sock.sendall(b"\x81\x02hi")  # unmasked: a server must refuse it
    opcode, data = client.ws.recv_data(control_frame=True)
    assert opcode == websocket.ABNF.OPCODE_CLOSE and data[:2] == b"\x03\xea"  # 1002
    with pytest.raises((websocket.WebSocketConnectionClosedException, ConnectionError)):
        client.ws.recv()
    client.ws.close()


def test_connections_past_the_cap_are_closed_with_try_again(redis_url: str,
                                                            tmp_path: Path) -> None:
    with own_stack(redis_url, tmp_path, 12, HUB_MAX_CONNECTIONS="2") as stack:
        held = [RawClient(stack, f"u{n}") for n in range(2)]
        url = stack.base_url.replace("http://", "ws://") + "/socket.io/?EIO=4&transport=websocket"
        third = websocket.create_connection(url, timeout=30)
        opcode, data = third.recv_data(control_frame=True)
        assert opcode == websocket.ABNF.OPCODE_CLOSE and data[:2] == b"\x03\xf5"  # 1013
        assert metric(stack, "hub_ws_refused_total") == 1
        held[0].ws.close()

        def connects() -> bool:
            try:
                held[0] = RawClient(stack, "again")
            except (AssertionError, websocket.WebSocketException):
                return False
            return True

        wait_until(connects, 10, what="a free slot once a client left")
        third.close()
        for client in held:
            client.ws.close()
