"""Follow one task's publications until it ends, over Socket.IO with recovery (or REST polling).

A task with an owner (`user`) is watched over Socket.IO as that user: the SDK mints a user
JWT through `POST /api/v1/tokens` (the API key needs the `tokens` scope), connects over the
websocket transport and subscribes to `task:<id>`. After a dropped connection it reconnects
and resubscribes with `since` = the last publication it yielded, so nothing is lost or
repeated; when the history no longer covers that point it yields the task's current record
as a `task.snapshot` publication (or as its end, if it ended) and goes on from there.

A task without an owner has no user who may subscribe: it is followed by polling
`GET /api/v1/channels/task:<id>/history` (the API key needs the `publish` scope).
"""

import queue
import socket
import time
from collections.abc import Generator, Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import socketio  # type: ignore[import-untyped]  # ships no type information

from hub_client import errors
from hub_client.types import END_STATES, END_TYPES, Publication, Task

if TYPE_CHECKING:
    from hub_client.client import HubClient

POLL_INTERVAL = 0.5  # seconds between history polls for an ownerless task
END_GRACE = 3.0  # seconds to wait for the end publication once the record says it ended
# Socket.IO error-ack codes and the exceptions REST would raise for the same refusal.
ACK_ERRORS: dict[str, type[errors.HubError]] = {
    "unauthorized": errors.Unauthorized, "forbidden": errors.Forbidden,
    "not_found": errors.NotFound, "invalid": errors.ValidationFailed,
    "too_large": errors.PayloadTooLarge, "rate_limited": errors.RateLimited,
    "unavailable": errors.Unavailable,
}


class Reconnect(Exception):
    """The connection or the subscription broke: connect again and recover."""


class Gap(Exception):
    """A live publication skipped an offset or changed epoch: recover on this connection."""


@dataclass
class Cursor:
    """The last publication yielded, and whether the task's end was among them."""

    offset: int = 0
    epoch: str | None = None
    ended: bool = False


def synthetic(channel: str, record: Task, offset: int, epoch: str) -> Publication:
    """The current record as a publication: its end if it ended, else `task.snapshot`."""
    state = record["state"]
    kind = f"task.{state}" if state in END_STATES else "task.snapshot"
    return {"channel": channel, "offset": offset, "epoch": epoch, "type": kind,
            "data": record, "snapshot": True}


class TaskWatch(Iterator[Publication]):
    """Iterate to get the task's publications in offset order; iteration stops after the
    task's one end publication (task.succeeded, task.failed or task.cancelled). Raises
    TimeoutError once `timeout` seconds have passed without the end."""

    def __init__(self, client: "HubClient", task_id: str, timeout: float | None = None,
                 token_ttl: int = 3600, poll_interval: float = POLL_INTERVAL) -> None:
        self.client = client
        self.task_id = task_id
        self.channel = f"task:{task_id}"
        self.deadline = None if timeout is None else time.monotonic() + timeout
        self.timeout = timeout
        self.token_ttl = token_ttl
        self.poll_interval = poll_interval
        self.reconnects = 0  # connections made after the first (for callers and tests)
        self._failures = 0  # consecutive failed connections or subscriptions
        self.cursor = Cursor()
        self._sio: socketio.Client | None = None
        self._inbox: queue.Queue[tuple[str, Any]] = queue.Queue()
        self._events: Generator[Publication, None, None] | None = None

    def __iter__(self) -> "TaskWatch":
        return self

    def __next__(self) -> Publication:
        if self._events is None:
            self._events = self._run()
        return next(self._events)

    def __enter__(self) -> "TaskWatch":
        return self

    def __exit__(self, *_: object) -> None:
        self.close()

    def close(self) -> None:
        if self._events is not None:
            self._events.close()
        self._disconnect()

    def drop_connection(self) -> None:
        """Cut the socket as a network failure would (no goodbye); the watch recovers.
        A hook for tests and for callers that want to force a reconnect."""
        sio = self._sio
        ws = getattr(getattr(sio, "eio", None), "ws", None)
        raw = getattr(ws, "sock", None)
        if raw is not None:
            raw.shutdown(socket.SHUT_RDWR)
        elif sio is not None:
            sio.disconnect()

    # -- the iteration --------------------------------------------------------------

    def _run(self) -> Generator[Publication, None, None]:
        task = self.client.get_task(self.task_id)
        if task["user"] is None:
            yield from self._poll()
        else:
            yield from self._stream(task["user"])

    def _remaining(self) -> float | None:
        if self.deadline is None:
            return None
        left = self.deadline - time.monotonic()
        if left <= 0:
            raise TimeoutError(f"task {self.task_id} did not end within {self.timeout}s")
        return left

    def _accept(self, publication: Publication) -> list[Publication]:
        """[publication] if it is the next one, [] for a duplicate; Gap for a hole."""
        if publication.get("channel") != self.channel or self.cursor.ended:
            return []  # the user channel also carries the task's end, and other news
        if publication["epoch"] != self.cursor.epoch:
            raise Gap
        if publication["offset"] <= self.cursor.offset:
            return []
        if publication["offset"] != self.cursor.offset + 1:
            raise Gap
        self.cursor.offset = publication["offset"]
        self.cursor.ended = publication["type"] in END_TYPES
        return [publication]

    # -- Socket.IO ----------------------------------------------------------------------

    def _stream(self, user: str) -> Iterator[Publication]:
        try:
            while not self.cursor.ended:
                try:
                    self._connect(user)
                    yield from self._follow()
                except Reconnect:
                    if self._failures >= self.client.retries:
                        raise errors.TransportError(
                            None, "watch failed", f"lost {self.channel}: no subscription "
                            f"after {self._failures + 1} attempts") from None
                    self._disconnect()
                    self.client.sleep(self.client.delay(self._failures))
                    self._failures += 1
                    self.reconnects += 1
        finally:
            self._disconnect()

    def _connect(self, user: str) -> None:
        self._remaining()
        token = self.client.token(user, ttl=self.token_ttl)["token"]
        inbox: queue.Queue[tuple[str, Any]] = queue.Queue()
        sio = socketio.Client(reconnection=False)
        sio.on("*", lambda event, *args: inbox.put(("event", args[0] if args else None)))
        sio.on("disconnect", lambda *_: inbox.put(("closed", None)))
        try:
            sio.connect(self.client.base_url, auth={"token": token}, transports=["websocket"],
                        wait_timeout=self.client.timeout)
        except socketio.exceptions.ConnectionError as exc:
            raise Reconnect from exc
        self._sio, self._inbox = sio, inbox

    def _disconnect(self) -> None:
        sio, self._sio = self._sio, None
        if sio is not None and sio.connected:
            sio.disconnect()

    def _follow(self) -> Iterator[Publication]:
        """Subscribe (recovering from the cursor), then take live publications until the end."""
        pending_end = yield from self._subscribe()
        self._failures = 0  # subscribed: the retry budget starts again at the next failure
        idle_since = time.monotonic()
        while not self.cursor.ended:
            left = self._remaining()
            try:
                kind, data = self._inbox.get(timeout=min(0.5, left or 0.5))
            except queue.Empty:
                if pending_end is not None and time.monotonic() - idle_since > END_GRACE:
                    # The record ended but its end publication never came: report the end.
                    self.cursor.ended = True
                    yield pending_end
                    return
                continue
            if kind == "closed":
                raise Reconnect
            if not isinstance(data, dict) or "offset" not in data:
                continue
            try:
                fresh = self._accept(data)  # type: ignore[arg-type]
            except Gap:
                pending_end = yield from self._subscribe()
                continue
            if fresh:
                idle_since = time.monotonic()
            yield from fresh

    def _subscribe(self) -> Generator[Publication, None, Publication | None]:
        """Subscribe from the cursor and yield what the ack recovers (or the snapshot).
        Returns the snapshot's end if the record ended but no end publication was seen."""
        first = self.cursor.epoch is None
        ack = self._call_subscribe(None if first else self.cursor)
        if first:
            # Only the channel's epoch is known now; ask again from its start.
            self.cursor.epoch = ack["epoch"]
            ack = self._call_subscribe(self.cursor)
        snapshot: Task | None = ack.get("snapshot")
        if snapshot is None:
            raise errors.NotFound(404, "Not Found", f"no task {self.task_id}")
        if ack["recovered"]:
            for publication in ack["publications"]:
                yield from self._accept(publication)
            if snapshot["state"] in END_STATES and not self.cursor.ended:
                return synthetic(self.channel, snapshot, self.cursor.offset, ack["epoch"])
            return None
        yield self._resync(snapshot, ack["offset"], ack["epoch"])
        return None

    def _call_subscribe(self, since: Cursor | None) -> dict[str, Any]:
        payload: dict[str, Any] = {"channel": self.channel}
        if since is not None:
            payload["since"] = {"offset": since.offset, "epoch": since.epoch}
        sio = self._sio
        if sio is None:
            raise Reconnect
        try:
            ack = sio.call("subscribe", payload, timeout=self.client.timeout)
        except (socketio.exceptions.TimeoutError, socketio.exceptions.SocketIOError) as exc:
            raise Reconnect from exc
        if not isinstance(ack, dict):
            raise Reconnect
        if not ack.get("ok"):
            problem = ack.get("error") or {}
            code = str(problem.get("code", ""))
            if code in ("unavailable", "rate_limited"):
                raise Reconnect
            cls = ACK_ERRORS.get(code, errors.HubError)
            raise cls(cls.status, code or "error", str(problem.get("message", "")))
        return ack

    # -- polling (tasks without an owner) -------------------------------------------

    def _poll(self) -> Iterator[Publication]:
        idle_since = time.monotonic()
        while not self.cursor.ended:
            page = self.client.history(self.channel, since=self.cursor.offset,
                                       epoch=self.cursor.epoch, limit=1000)
            self.cursor.epoch = self.cursor.epoch or page["epoch"]
            try:
                if not page["recovered"]:
                    raise Gap
                fresh = [p for item in page["publications"] for p in self._accept(item)]
            except Gap:  # the history no longer covers the cursor: resynchronise
                record = self.client.get_task(self.task_id)
                yield self._resync(record, page["offset"], page["epoch"])
                idle_since = time.monotonic()
                continue
            yield from fresh
            if fresh:
                idle_since = time.monotonic()
            elif time.monotonic() - idle_since > END_GRACE:
                record = self.client.get_task(self.task_id)
                if record["state"] in END_STATES:  # ended, but its end publication is gone
                    yield self._resync(record, self.cursor.offset, page["epoch"])
                    return
                idle_since = time.monotonic()
            if page["offset"] > self.cursor.offset:
                continue  # more than one page behind: no pause
            left = self._remaining()
            self.client.sleep(min(self.poll_interval, left or self.poll_interval))

    def _resync(self, record: Task, offset: int, epoch: str) -> Publication:
        """Continue from the record as of `offset`, and say so with a synthetic publication."""
        self.cursor.offset, self.cursor.epoch = offset, epoch
        self.cursor.ended = record["state"] in END_STATES
        return synthetic(self.channel, record, offset, epoch)
