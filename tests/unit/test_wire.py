"""events.wire's bytes, fed through python-socketio's own decoder: a python-socketio upgrade
that changes the message-queue format fails here, not in production."""

import json
from collections.abc import Iterator
from typing import Any

import socketio
from engineio import packet as eio_packet

from events.manager import HubRedisManager
from events.redis_backend import APPEND, APPEND_FIRST
from events.wire import (
    PROBE_EVENT,
    PROBE_ROOM,
    envelope,
    envelope_tail,
    is_probe,
    lua_envelope,
    lua_queue_message,
    probe_message,
    probe_number,
    queue_head,
    queue_message,
    room_of,
)

ROOM = "task:0f3a"
EVENT = "task.progress"
BODY = {"channel": "task:0f3a", "type": EVENT, "data": {"pct": 50, "note": "ü \"q\""},
        "ts": "2026-01-01T00:00:00.000Z", "trace_id": "abc"}


def publication(room: str = ROOM, host_id: str = "hub-publisher") -> tuple[bytes, dict[str, Any]]:
    """A raw queue message as RedisBackend's script publishes it, and its envelope."""
    env = envelope(7, "EpOcH", envelope_tail(BODY))
    return queue_message(queue_head(EVENT, room, host_id), env).encode(), json.loads(env)


class Replay(socketio.PubSubManager):
    """A stock pub/sub manager (the two designed methods only) replaying raw queue messages."""

    def __init__(self, raw: list[bytes]) -> None:
        super().__init__(channel="t")
        self.raw = raw
        self.published: list[dict[str, Any]] = []

    def _publish(self, data: dict[str, Any]) -> None:
        self.published.append(data)

    def _listen(self) -> Iterator[bytes]:
        yield from self.raw


def delivered(manager: socketio.PubSubManager, run: bool = True) -> list[tuple[str, object]]:
    """Run python-socketio's listener thread to the end of the queue on a real Server, one
    client in ROOM; what reached that client, as (eio sid, decoded Socket.IO packet data)."""
    server = socketio.Server(client_manager=manager, async_mode="threading")
    sent: list[tuple[str, object]] = []

    def send(eio_sid: str, pkt: eio_packet.Packet) -> None:
        # Recorded, not asserted: python-socketio's listener logs and swallows handler errors.
        decoded = socketio.packet.Packet(encoded_packet=pkt.data)
        event = (pkt.packet_type, decoded.packet_type, decoded.namespace or "/")
        if event == (eio_packet.MESSAGE, socketio.packet.EVENT, "/"):
            sent.append((eio_sid, decoded.data))
        else:
            sent.append((eio_sid, event))

    server._send_eio_packet = send  # type: ignore[method-assign]
    manager.basic_enter_room("s1", "/", None, eio_sid="e1")
    manager.basic_enter_room("s1", "/", ROOM, eio_sid="e1")
    if run:
        manager._thread()  # returns once the replayed queue is exhausted
    return sent


def test_python_socketio_delivers_the_event_with_the_envelope_to_the_room() -> None:
    raw, env = publication()
    assert delivered(Replay([raw])) == [("e1", [EVENT, env])]
    assert delivered(Replay([publication(room="task:other")[0]])) == []


def test_the_message_is_exactly_what_python_socketio_itself_publishes() -> None:
    raw, env = publication(host_id="ours")
    stock = Replay([])
    delivered(stock, run=False)
    stock.emit(EVENT, env, room=ROOM)  # python-socketio's own encoding of the same emit
    assert json.loads(raw) == {**stock.published[0], "host_id": "ours"}


def test_the_room_leads_so_room_of_peeks_it() -> None:
    raw, _ = publication()
    assert raw.startswith(queue_head(EVENT, ROOM, "hub-publisher").encode())
    assert queue_head(EVENT, ROOM, "h") == (
        '{"room":"task:0f3a","method":"emit","event":"task.progress","binary":false,'
        '"namespace":"/","skip_sid":null,"callback":null,"host_id":"h","data":[')
    assert room_of(raw) == ROOM
    assert room_of(probe_message(1, "probe:x").encode()) is None
    assert room_of(json.dumps({"method": "emit", "room": ROOM}).encode()) is None


def test_hubs_manager_delivers_a_publication_and_hears_its_own_probe() -> None:
    manager = HubRedisManager("redis://127.0.0.1:1/0", channel="t")  # never connects here
    raw, env = publication()
    queue = [probe_message(3, manager.probe_id).encode(), raw,
             publication(room="task:nobody")[0], probe_message(9, "probe:elsewhere").encode()]
    manager._redis_listen_with_retries = lambda: iter(  # type: ignore[method-assign]
        [{"channel": b"t", "type": "message", "data": data} for data in queue])
    assert delivered(manager) == [("e1", [EVENT, env])]
    assert manager.heard == 3  # its own probe came back; another process's did not count


def test_the_probe_decodes_as_an_emit_to_the_probe_room() -> None:
    message = json.loads(probe_message(5, "probe:me"))
    assert is_probe(message) and not is_probe(json.loads(publication()[0]))
    assert (message["method"], message["event"], message["room"]) == ("emit", PROBE_EVENT,
                                                                     PROBE_ROOM)
    assert probe_number(message, "probe:me") == 5
    assert probe_number(message, "probe:other") == 0


def test_the_lua_scripts_splice_the_modules_pieces() -> None:
    for script in (APPEND, APPEND_FIRST):
        assert f"local env = {lua_envelope('offset', 'epoch', 'ARGV[2]')}\n" in script
        assert f"redis.call('PUBLISH', ARGV[5], {lua_queue_message('ARGV[6]', 'env')})" in script
    assert lua_envelope("o", "e", "t") == """'{"offset":' .. o .. ',"epoch":"' .. e .. '",' .. t"""
    assert lua_queue_message("h", "e") == "h .. e .. ']}'"
