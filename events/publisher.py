"""publish(): the one way anything reaches a client."""

import secrets
from datetime import UTC, datetime
from typing import Any

from flask import current_app

from events.backend import Envelope, HistoryBackend, Position, Recovery
from events.channels import is_valid_channel, room
from events.wire import envelope_tail


class PublishError(ValueError):
    """The publication is not acceptable (bad channel, too large, not JSON)."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code


def now_iso() -> str:
    # isoformat is C: half the cost of strftime, paid once per publication.
    return datetime.now(UTC).isoformat(timespec="milliseconds")[:-6] + "Z"


class Publisher:
    """Builds the SPEC envelope once and hands it to the history backend."""

    def __init__(self, backend: HistoryBackend, max_bytes: int) -> None:
        self.backend = backend
        self.max_bytes = max_bytes

    def publish(
        self, channel: str, event_type: str, data: Any, *, trace_id: str | None = None
    ) -> Envelope:
        body, tail = self._encode(channel, event_type, data, trace_id)
        position = self.backend.append(channel, room(channel), event_type, tail)
        return {"offset": position.offset, "epoch": position.epoch, **body}

    def publish_many(
        self, items: list[tuple[str, str, Any]], *, trace_id: str | None = None
    ) -> list[Envelope]:
        """Publish (channel, type, data) items in order, in one round trip where the backend
        can. Each is checked before any is stored, so a bad item stores none."""
        bodies, entries = [], []
        for channel, event_type, data in items:
            body, tail = self._encode(channel, event_type, data, trace_id)
            bodies.append(body)
            entries.append((channel, room(channel), event_type, tail))
        positions = self.backend.append_many(entries)
        return [{"offset": position.offset, "epoch": position.epoch, **body}
                for position, body in zip(positions, bodies, strict=True)]

    def publish_first(
        self, channel: str, event_type: str, data: Any, *, trace_id: str | None = None
    ) -> Envelope | None:
        """Publish only as the channel's first publication; None if something came first."""
        body, tail = self._encode(channel, event_type, data, trace_id)
        position = self.backend.append_first(channel, room(channel), event_type, tail)
        return None if position is None else {"offset": position.offset,
                                              "epoch": position.epoch, **body}

    def check(self, channel: str, event_type: str, data: Any, *,
              trace_id: str | None = None) -> None:
        """Raise the PublishError publish() would, storing nothing: for callers that must
        refuse before their own first write (a notification's row)."""
        self._encode(channel, event_type, data, trace_id)

    def _encode(self, channel: str, event_type: str, data: Any,
                trace_id: str | None) -> tuple[dict[str, Any], str]:
        """The envelope without its position, and its JSON tail (see HistoryBackend.append)."""
        if not is_valid_channel(channel):
            raise PublishError("invalid", f"invalid channel name {channel!r}")
        body = {
            "channel": channel, "type": event_type, "data": data,
            "ts": now_iso(), "trace_id": trace_id or secrets.token_hex(8),
        }
        try:
            tail = envelope_tail(body)
        except (TypeError, ValueError) as exc:
            raise PublishError("invalid", f"data is not JSON: {exc}") from exc
        if len(tail.encode()) > self.max_bytes:
            raise PublishError("too_large", f"publication exceeds {self.max_bytes} bytes")
        return body, tail

    def recover(self, channel: str, since: Position | None, limit: int = 0) -> Recovery:
        return self.backend.recover(channel, since, limit)


EXTENSION = "hub.publisher"


def current_publisher() -> Publisher:
    return current_app.extensions[EXTENSION]


def publish(channel: str, event_type: str, data: Any, *, trace_id: str | None = None) -> Envelope:
    """Publish through the current app's publisher (web, worker and beat alike)."""
    return current_publisher().publish(channel, event_type, data, trace_id=trace_id)


def publish_many(items: list[tuple[str, str, Any]], *,
                 trace_id: str | None = None) -> list[Envelope]:
    """Several publications, in order and in one round trip (see Publisher.publish_many)."""
    return current_publisher().publish_many(items, trace_id=trace_id)


def publish_first(channel: str, event_type: str, data: Any, *,
                  trace_id: str | None = None) -> Envelope | None:
    """Publish as the channel's first publication, or not at all (see Publisher.publish_first)."""
    return current_publisher().publish_first(channel, event_type, data, trace_id=trace_id)
