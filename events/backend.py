"""Channel history backends: the small base class and the in-memory one for unit tests.

A backend does three things atomically per channel: give each publication the
next offset in the channel's epoch, keep the last N publications, and hand the
publication to the delivery path in offset order.
"""

import json
import secrets
import threading
from abc import ABC, abstractmethod
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from events.wire import envelope

Envelope = dict[str, Any]
# Delivers one publication to the Socket.IO room of its channel.
Deliver = Callable[[str, Envelope, str], None]
# One encoded publication on its way to a backend: channel, room, event type, tail.
Entry = tuple[str, str, str, str]


@dataclass(frozen=True)
class Position:
    offset: int
    epoch: str


@dataclass
class Recovery:
    """Where a channel stands, and whether the publications after `since` are all here."""

    position: Position
    recovered: bool
    publications: list[Envelope] = field(default_factory=list)


def new_epoch() -> str:
    return secrets.token_urlsafe(6)


class HistoryBackend(ABC):
    """Offsets, epochs and bounded history per channel, plus ordered hand-off for delivery."""

    def __init__(self, size: int, ttl: int) -> None:
        self.size = max(1, size)
        self.ttl = max(1, ttl)

    @abstractmethod
    def append(self, channel: str, room: str, event_type: str, tail: str) -> Position:
        """Store one publication and hand it to delivery.

        `tail` is the JSON object of the envelope without offset and epoch,
        minus its opening brace: encoded once, completed by the backend.
        """

    def append_many(self, entries: list[Entry]) -> list[Position]:
        """Store several publications in order, as `append` would one by one. A backend
        that can do them in one round trip overrides this."""
        return [self.append(*entry) for entry in entries]

    @abstractmethod
    def append_first(self, channel: str, room: str, event_type: str, tail: str) -> Position | None:
        """`append`, but only while the channel has no publication yet; None if it has one.
        For an announcement that must never land after a later event (task.queued after
        task.started, when the worker wins the race with the submitting web process)."""

    @abstractmethod
    def recover(self, channel: str, since: Position | None, limit: int = 0) -> Recovery:
        """The channel's position and, if `since` is given, the publications after it."""

    def ping(self) -> bool:
        return True


class MemoryBackend(HistoryBackend):
    """One-process history for unit tests and the threading development mode."""

    def __init__(self, size: int, ttl: int, deliver: Deliver | None = None) -> None:
        super().__init__(size, ttl)
        self.deliver = deliver
        self._lock = threading.Lock()
        self._channels: dict[str, tuple[str, int, deque[str]]] = {}

    def _state(self, channel: str) -> tuple[str, int, deque[str]]:
        if channel not in self._channels:
            self._channels[channel] = (new_epoch(), 0, deque(maxlen=self.size))
        return self._channels[channel]

    def append(self, channel: str, room: str, event_type: str, tail: str) -> Position:
        with self._lock:
            epoch, offset, log = self._state(channel)
            position = Position(offset + 1, epoch)
            encoded = envelope(position.offset, position.epoch, tail)
            log.append(encoded)
            self._channels[channel] = (epoch, position.offset, log)
        if self.deliver is not None:
            self.deliver(event_type, json.loads(encoded), room)
        return position

    def append_first(self, channel: str, room: str, event_type: str, tail: str) -> Position | None:
        with self._lock:
            epoch, offset, log = self._state(channel)
            if offset > 0:
                return None
            position = Position(1, epoch)
            encoded = envelope(position.offset, position.epoch, tail)
            log.append(encoded)
            self._channels[channel] = (epoch, 1, log)
        if self.deliver is not None:
            self.deliver(event_type, json.loads(encoded), room)
        return position

    def recover(self, channel: str, since: Position | None, limit: int = 0) -> Recovery:
        with self._lock:
            epoch, offset, log = self._state(channel)
            items = list(log)
        position = Position(offset, epoch)
        if since is None:
            return Recovery(position, False)
        if since.epoch != epoch or since.offset > offset:
            return Recovery(position, False)
        first = offset - len(items) + 1
        if since.offset + 1 < first:
            return Recovery(position, False)
        wanted = items[since.offset + 1 - first:]
        if limit > 0:
            wanted = wanted[:limit]
        return Recovery(position, True, [json.loads(item) for item in wanted])

    def flush(self) -> None:
        """Forget everything, as a Redis flush would: the next publication opens a new epoch."""
        with self._lock:
            self._channels.clear()
