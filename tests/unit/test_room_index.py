"""HubRedisManager's per-client room index leaves the room table exactly as python-socketio's
own scan does, and a disconnect touches only the leaving client's rooms."""

import socketio

from events.manager import HubRedisManager
from events.wire import queue_head as mq_prefix
from events.wire import room_of


def scripted(manager: socketio.Manager) -> dict[object, dict[object, dict[str, str]]]:
    for n in range(5):
        sid, eio = f"s{n}", f"e{n}"
        manager.basic_enter_room(sid, "/", None, eio_sid=eio)
        manager.basic_enter_room(sid, "/", sid, eio_sid=eio)
        manager.basic_enter_room(sid, "/", "user:alice" if n % 2 else "user:bob")
        manager.basic_enter_room(sid, "/", "public:news")
    manager.basic_leave_room("s1", "/", "public:news")
    manager.pending_disconnect["/"] = ["s1", "s3"]
    manager.callbacks["s1"] = {1: print}
    for sid in ("s1", "s3", "s4"):
        manager.basic_disconnect(sid, "/")
    manager.basic_disconnect("never-connected", "/")
    return {ns: {room: dict(members) for room, members in rooms.items()}
            for ns, rooms in manager.rooms.items()}


def test_the_index_matches_python_socketios_scan() -> None:
    ours = HubRedisManager("redis://127.0.0.1:1/0", channel="t")  # never connects here
    stock = socketio.Manager()
    assert scripted(ours) == scripted(stock)
    assert ours.pending_disconnect == stock.pending_disconnect == {}
    assert ours.callbacks == stock.callbacks == {}
    assert set(ours.rooms_of) == {("/", "s0"), ("/", "s2")}
    assert ours.rooms_of[("/", "s0")] == {None, "s0", "user:bob", "public:news"}


class CountingPacket(socketio.packet.Packet):
    encoded = 0

    def encode(self) -> object:
        CountingPacket.encoded += 1
        return super().encode()


class RecordingServer:
    """What Manager.emit needs of a server: a packet class and a send, recorded."""

    packet_class = CountingPacket

    def __init__(self) -> None:
        self.sent: list[str] = []

    def _send_eio_packet(self, eio_sid: str, _packet: object) -> None:
        self.sent.append(eio_sid)


def queue_message(room: str) -> dict[str, object]:
    return {"method": "emit", "event": "note", "data": [{"n": 1}], "namespace": "/",
            "room": room, "skip_sid": None, "callback": None, "host_id": "elsewhere"}


def test_a_publication_for_a_room_without_local_members_is_not_encoded() -> None:
    manager = HubRedisManager("redis://127.0.0.1:1/0", channel="t")  # never connects here
    server = RecordingServer()
    manager.set_server(server)
    CountingPacket.encoded = 0
    manager.basic_enter_room("s1", "/", "public:news", eio_sid="e1")
    manager._handle_emit(queue_message("task:nobody-watches"))
    assert (CountingPacket.encoded, server.sent) == (0, [])
    manager._handle_emit(queue_message("public:news"))
    assert (CountingPacket.encoded, server.sent) == (1, ["e1"])
    manager.basic_leave_room("s1", "/", "public:news")  # the room empties and goes
    manager._handle_emit(queue_message("public:news"))
    assert (CountingPacket.encoded, server.sent) == (1, ["e1"])


def test_the_listener_passes_over_rooms_without_local_members_unparsed() -> None:
    manager = HubRedisManager("redis://127.0.0.1:1/0", channel="t")  # never connects here
    manager.basic_enter_room("s1", "/", "public:news", eio_sid="e1")
    watched = mq_prefix("note", "public:news", "pub").encode() + b'{"n":1}]}'
    unwatched = mq_prefix("note", "task:nobody-watches", "pub").encode() + b'{"n":2}]}'
    probe = b'{"method":"emit","room":"hub:probe","data":[3]}'  # not ours: always parsed
    raw = [unwatched, watched, probe, b"not json"]
    manager._redis_listen_with_retries = lambda: iter(  # type: ignore[method-assign]
        [{"channel": b"t", "type": "message", "data": data} for data in raw]
        + [{"channel": b"t", "type": "subscribe", "data": 1},
           {"channel": b"other", "type": "message", "data": watched}])
    assert list(manager._listen()) == [watched, probe, b"not json"]
    assert room_of(unwatched) == "task:nobody-watches" and room_of(probe) is None
