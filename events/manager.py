"""The web process's Socket.IO client manager: Redis message queue, ordered delivery, liveness."""

import logging
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import redis
import socketio

from events.redis_backend import connect, redis_options
from events.wire import is_probe, probe_message, probe_number, room_of

log = logging.getLogger(__name__)

LISTEN_TIMEOUT = 5.0  # seconds without a message (probes come every second) before reconnecting


class HubRedisManager(socketio.RedisManager):
    """python-socketio's Redis manager with two additions.

    A delivery lock: a subscriber that recovers history holds it while it reads
    the history and joins the room, so no live publication slips between the
    two (it either is in what was read, or arrives after, in order).

    A liveness probe: every `probe_interval` the hub publishes a numbered probe
    to its own queue channel. The listener is live when the latest probe older
    than `grace` has come back, and no probe failed since the last one heard.
    /readyz turns red while the hub is deaf.
    """

    def __init__(self, url: str, channel: str, probe_interval: float = 1.0,
                 grace: float = 0.5) -> None:
        # No hidden retries on the listener's own connection: a break must surface here. Its
        # reads wait for the next probe, so they may be quiet for a probe interval; a stalled
        # Redis still surfaces within LISTEN_TIMEOUT.
        super().__init__(url, channel=channel, redis_options={
            **redis_options(retries=0), "socket_timeout": LISTEN_TIMEOUT})
        # Created after the async library monkey-patched threading, so it is green where needed.
        self.delivery_lock = threading.Lock()
        self.probe_interval = probe_interval
        self.grace = grace
        self.sent: list[tuple[int, float]] = []  # (probe number, monotonic send time), recent
        self.heard = 0
        self.failed_after = 0  # deaf until a probe numbered above this one is heard
        self.last_number = 0
        self._probe_client = connect(url)
        self.rooms_of: dict[tuple[str, str], set[str | None]] = {}
        # Not host_id: python-socketio drops queue messages carrying its own host_id.
        self.probe_id = f"probe:{self.host_id}"

    def initialize(self) -> None:
        super().initialize()
        if not self.write_only:
            self.server.start_background_task(self._probe_loop)

    def _redis_connect(self) -> None:
        super()._redis_connect()
        # A (re)connected listener is deaf until it hears a probe sent after this point.
        self.failed_after = max(self.failed_after, self.last_number)

    # -- a room index per client ------------------------------------------------------
    # python-socketio finds a leaving client's rooms by copying and scanning the whole room
    # table: O(clients) per disconnect, so 10k clients dropping at once (a deploy, a
    # network blip) is 10^8 steps with the delivery loop stalled. Here each client's rooms
    # are indexed as it enters and leaves them.

    def basic_enter_room(self, sid: str, namespace: str, room: str | None,
                         eio_sid: str | None = None) -> None:
        super().basic_enter_room(sid, namespace, room, eio_sid=eio_sid)
        self.rooms_of.setdefault((namespace, sid), set()).add(room)

    def basic_leave_room(self, sid: str, namespace: str, room: str | None) -> None:
        super().basic_leave_room(sid, namespace, room)
        rooms = self.rooms_of.get((namespace, sid))
        if rooms is not None:
            rooms.discard(room)
            if not rooms:
                del self.rooms_of[(namespace, sid)]

    def basic_disconnect(self, sid: str, namespace: str, **kwargs: Any) -> None:
        if namespace not in self.rooms:
            return
        for room in list(self.rooms_of.get((namespace, sid), ())):
            self.basic_leave_room(sid, namespace, room)
        # The rest is python-socketio's own bookkeeping, unchanged.
        self.callbacks.pop(sid, None)
        for pending in (self.pending_connect, self.pending_disconnect):
            waiting = pending.get(namespace)
            if waiting is not None and sid in waiting:
                waiting.remove(sid)
                if not waiting:
                    del pending[namespace]

    def _redis_listen_with_retries(self) -> Iterator[dict[str, Any]]:
        """python-socketio's listen loop, changed in two ways: losing Redis makes the hub
        deaf at once (readiness red until a probe sent after the resubscribe comes back),
        and the backoff starts at 0.2 s instead of 1 s, since every second deaf is a second
        of publications its clients will only get through recovery."""
        backoff = 0.2
        while True:
            try:
                self._redis_connect()
                self.pubsub.subscribe(self.channel)
                backoff = 0.2
                yield from self.pubsub.listen()
            except Exception as exc:  # any failure: reconnect, as python-socketio does
                self.failed_after = max(self.failed_after, self.last_number)
                log.warning("message-queue listener lost Redis (%s); retrying in %.1fs",
                            exc, backoff)
                time.sleep(backoff)
                backoff = min(backoff * 2, 5.0)

    def _listen(self) -> Iterator[bytes]:
        """python-socketio's listen loop, passing over publications for rooms this process
        has no client in before they are parsed: with several web processes, or tasks that
        nobody watches, that is most of the queue (5 of a task's 7 publications in the
        bench's task round trip)."""
        channel = self.channel.encode()
        for message in self._redis_listen_with_retries():
            if message["channel"] != channel or message["type"] != "message":
                continue
            data = message.get("data")
            target = room_of(data) if isinstance(data, bytes) else None
            if target is not None:
                with self.delivery_lock:  # as in _handle_emit: membership under the lock
                    if target not in self.rooms.get("/", ()):
                        continue
            yield data

    def _handle_emit(self, message: dict[str, Any]) -> None:
        if is_probe(message):
            self.heard = max(self.heard, probe_number(message, self.probe_id))
            return
        room = message.get("room")
        with self.delivery_lock:  # membership is settled only under the lock
            if room is not None and room not in self.rooms.get(message.get("namespace"), ()):
                # No client of this process is in the room (a task nobody watches, another
                # web process's clients): python-socketio would still encode the packet.
                return
            super()._handle_emit(message)

    def listening(self) -> bool:
        if self.failed_after and self.heard <= self.failed_after:
            return False
        cutoff = time.monotonic() - self.grace
        due = [number for number, sent_at in self.sent if sent_at <= cutoff]
        if not due:
            return bool(self.sent) and self.heard > 0
        fresh = time.monotonic() - self.sent[-1][1] < 3 * self.probe_interval
        return fresh and self.heard >= due[-1]

    def _probe_loop(self) -> None:
        number = 0
        while True:
            number += 1
            self.last_number = number
            try:
                self._probe_client.publish(self.channel, probe_message(number, self.probe_id))
                self.sent = [*self.sent[-9:], (number, time.monotonic())]
            except redis.RedisError:
                self.failed_after = number
            self.server.sleep(self.probe_interval)


def local_deliver(server: socketio.Server) -> "Callable[[str, dict[str, Any], str], None]":
    """Delivery for the in-memory backend: straight to this process's clients."""

    def deliver(event_type: str, envelope: dict[str, Any], room: str) -> None:
        server.emit(event_type, envelope, to=room, namespace="/")

    return deliver
