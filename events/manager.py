"""The web process's Socket.IO client manager: Redis message queue, ordered delivery, liveness."""

import json
import threading
import time
from collections.abc import Callable
from typing import Any

import redis
import socketio

PROBE_ROOM = "hub:probe"


class HubRedisManager(socketio.RedisManager):
    """python-socketio's Redis manager with two additions.

    A delivery lock: a subscriber that recovers history holds it while it reads
    the history and joins the room, so no live publication slips between the
    two (it either is in what was read, or arrives after, in order).

    A liveness probe: the listener must hear its own probe every few seconds,
    or /readyz reports the hub deaf.
    """

    def __init__(self, url: str, channel: str, probe_interval: float = 2.0,
                 redis_options: dict[str, Any] | None = None) -> None:
        super().__init__(url, channel=channel, redis_options=redis_options)
        # Created after the async library monkey-patched threading, so it is green where needed.
        self.delivery_lock = threading.Lock()
        self.probe_interval = probe_interval
        self.last_heard = 0.0
        self._probe_client = redis.Redis.from_url(url, socket_timeout=5, socket_connect_timeout=5)

    def initialize(self) -> None:
        super().initialize()
        if not self.write_only:
            self.server.start_background_task(self._probe_loop)

    def _handle_emit(self, message: dict[str, Any]) -> None:
        self.last_heard = time.monotonic()
        if message.get("room") == PROBE_ROOM:
            return
        with self.delivery_lock:
            super()._handle_emit(message)

    def listening(self) -> bool:
        return time.monotonic() - self.last_heard < self.probe_interval * 3

    def _probe_loop(self) -> None:
        probe = json.dumps({
            "method": "emit", "event": "hub.probe", "data": [None], "namespace": "/",
            "room": PROBE_ROOM, "skip_sid": None, "callback": None, "host_id": "probe",
        })
        while True:
            try:
                self._probe_client.publish(self.channel, probe)
            except redis.RedisError:
                pass  # readiness turns red by itself when nothing is heard
            self.server.sleep(self.probe_interval)


def local_deliver(server: socketio.Server) -> "Callable[[str, dict[str, Any], str], None]":
    """Delivery for the in-memory backend: straight to this process's clients."""

    def deliver(event_type: str, envelope: dict[str, Any], room: str) -> None:
        server.emit(event_type, envelope, to=room, namespace="/")

    return deliver
