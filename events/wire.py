"""Hub's bytes on Redis: the publication envelope and python-socketio's message-queue format.

The one module that writes and reads them. A publication travels as an 'emit'
message of python-socketio's queue format (JSON, as `socketio.RedisManager`
publishes and its listener decodes), built in two halves so the envelope is
encoded once: a head per (event type, room, publisher), then the envelope and
QUEUE_CLOSE. The room leads the head, so a listener can peek it (`room_of`)
without parsing. The Lua scripts of events.redis_backend must splice these
strings inside Redis, for atomicity; they take their pieces from `lua_envelope`
and `lua_queue_message` here. tests/unit/test_wire.py feeds these bytes through
python-socketio's own decoder, so a library upgrade that changes the format
fails there.
"""

import json
from functools import lru_cache
from typing import Any

# The envelope (SPEC): offset and epoch first, then the publication's own fields (the tail).
ENVELOPE_OFFSET = '{"offset":'
ENVELOPE_EPOCH = ',"epoch":"'
ENVELOPE_REST = '",'

QUEUE_CLOSE = "]}"  # closes the head's `"data":[` list and the message object
ROOM_HEAD = b'{"room":"'  # how every publication's queue message starts

PROBE_ROOM = "hub:probe"  # no client is ever in it
PROBE_EVENT = "hub.probe"


def envelope_tail(body: dict[str, Any]) -> str:
    """The envelope's JSON without offset and epoch, minus its opening brace: encoded once per
    publication, completed by the history backend. Raises TypeError/ValueError if not JSON."""
    return json.dumps(body, separators=(",", ":"), ensure_ascii=False)[1:]


def envelope(offset: int, epoch: str, tail: str) -> str:
    """The stored and delivered envelope: position first, then the tail."""
    return f"{ENVELOPE_OFFSET}{offset}{ENVELOPE_EPOCH}{epoch}{ENVELOPE_REST}{tail}"


@lru_cache(maxsize=4096)  # a channel publishes a handful of event types, often in a row
def queue_head(event_type: str, room: str, host_id: str) -> str:
    """The head of a python-socketio queue 'emit' message to `room`; the envelope follows."""
    # The room comes first, so a listener can pass over a publication for a room it has no
    # member in without parsing it (room_of).
    head = {
        "room": room, "method": "emit", "event": event_type, "binary": False,
        "namespace": "/", "skip_sid": None, "callback": None, "host_id": host_id,
    }
    return json.dumps(head, separators=(",", ":"))[:-1] + ',"data":['


def queue_message(head: str, envelope: str) -> str:
    """A whole queue message: what the Lua scripts PUBLISH, built the same way in Python."""
    return head + envelope + QUEUE_CLOSE


def room_of(raw: bytes) -> str | None:
    """The room of a raw publication message (its head starts with the room, whose name needs
    no JSON escaping); None for any other queue message, the probe included."""
    if not raw.startswith(ROOM_HEAD):
        return None
    end = raw.find(b'"', len(ROOM_HEAD))
    return raw[len(ROOM_HEAD):end].decode() if end > 0 else None


def probe_message(number: int, probe_id: str) -> str:
    """A liveness probe: an 'emit' to PROBE_ROOM, tagged by the sending process's `probe_id`."""
    return json.dumps({
        "method": "emit", "event": PROBE_EVENT, "data": [number], "namespace": "/",
        "room": PROBE_ROOM, "skip_sid": None, "callback": None, "host_id": probe_id,
    })


def is_probe(message: dict[str, Any]) -> bool:
    """Whether a decoded queue message is a probe (of any process)."""
    return message.get("room") == PROBE_ROOM


def probe_number(message: dict[str, Any], probe_id: str) -> int:
    """The number of a decoded probe sent by `probe_id`; 0 for another process's probe."""
    if message.get("host_id") != probe_id:
        return 0  # several web processes share the queue channel
    data = message.get("data")
    number = data[0] if isinstance(data, list) and data else 0
    return number if isinstance(number, int) else 0


def _lua(text: str) -> str:
    """`text` as a Lua string literal."""
    return "'" + text.replace("\\", "\\\\").replace("'", "\\'") + "'"


def lua_envelope(offset: str, epoch: str, tail: str) -> str:
    """A Lua expression building `envelope` from the Lua expressions given."""
    return (f"{_lua(ENVELOPE_OFFSET)} .. {offset} .. {_lua(ENVELOPE_EPOCH)} .. {epoch}"
            f" .. {_lua(ENVELOPE_REST)} .. {tail}")


def lua_queue_message(head: str, envelope: str) -> str:
    """A Lua expression building `queue_message` from the Lua expressions given."""
    return f"{head} .. {envelope} .. {_lua(QUEUE_CLOSE)}"
