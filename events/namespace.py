"""The Socket.IO namespace: connect auth, the personal channel, subscribe with recovery."""

import logging
import threading
import time
from collections import Counter
from collections.abc import Callable
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from flask import Flask
from flask_socketio import ConnectionRefusedError, Namespace

from events.backend import Position
from events.channels import may_subscribe, room, task_id_of, user_channel
from events.intake import CLIENT_EVENTS
from events.limits import TokenBucket
from events.publisher import current_publisher
from events.tokens import TokenError, UserIdentity, verify

log = logging.getLogger(__name__)

Ack = dict[str, Any]
# Returns the task record (the subscribe snapshot, with its owner in "user") or None.
TaskLookup = Callable[[str], dict[str, Any] | None]
# Marks a user's notifications read (ids, or all when None); returns the unread count and
# raises LookupError for ids that are not the user's.
MarkRead = Callable[[str, list[int] | None], int]
# Cancels a task by id; False when it had already ended.
CancelTask = Callable[[str], bool]

# The namespace's handlers: the client events of SPEC section 5, and the two lifecycle
# events only python-socketio itself may trigger (events.intake keeps clients from them).
HANDLERS: dict[str, str] = {
    "connect": "on_connect", "disconnect": "on_disconnect",
    **{event: "on_" + event.replace(".", "_") for event in CLIENT_EVENTS},
}


@dataclass(frozen=True)
class SocketSettings:
    jwt_secret: str
    max_subscriptions: int = 100
    max_connections_per_user: int = 20
    event_rate: float = 20.0
    event_burst: float = 40.0
    expiry_warning: int = 30
    expiry_check_interval: float = 1.0
    # Refused events drain a second bucket that refills at a tenth of the rate: a connection
    # that keeps sending over its rate empties it and is disconnected.
    strike_ratio: float = 0.1


@dataclass
class Connection:
    identity: UserIdentity
    bucket: TokenBucket
    strikes: TokenBucket
    subscriptions: set[str] = field(default_factory=set)
    warned: bool = False
    closing: bool = False


def ok(**fields: Any) -> Ack:
    return {"ok": True, **fields}


def error(code: str, message: str) -> Ack:
    return {"ok": False, "error": {"code": code, "message": message}}


def refuse(code: str, message: str) -> ConnectionRefusedError:
    """Socket.IO clients see `message` as the error and `data` as {code, message}."""
    return ConnectionRefusedError(message, {"code": code, "message": message})


def parse_since(value: object) -> Position | None:
    """`since` is {offset: int >= 0, epoch: str}; anything else is invalid."""
    if value is None:
        return None
    if not isinstance(value, dict):
        raise ValueError("since must be an object {offset, epoch}")
    offset, epoch = value.get("offset"), value.get("epoch")
    if isinstance(offset, bool) or not isinstance(offset, int) or offset < 0:
        raise ValueError("since.offset must be a non-negative integer")
    if not isinstance(epoch, str) or not 0 < len(epoch) <= 64:
        raise ValueError("since.epoch must be a string")
    return Position(offset, epoch)


def iso_from_unix(seconds: int) -> str:
    return datetime.fromtimestamp(seconds, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


class HubNamespace(Namespace):
    def __init__(
        self, app: Flask, settings: SocketSettings, task_lookup: TaskLookup, mark_read: MarkRead,
        cancel_task: CancelTask, delivery_lock: AbstractContextManager[Any] | None = None,
        namespace: str = "/",
    ) -> None:
        super().__init__(namespace)
        self.app = app  # background tasks (recovery, expiry) run outside any request
        self.settings = settings
        self.task_lookup = task_lookup
        self.mark_read = mark_read
        self.cancel_task = cancel_task
        self.delivery_lock = delivery_lock or threading.Lock()
        self.connections: dict[str, Connection] = {}
        self.per_user: Counter[str] = Counter()
        self._expiry_started = False

    def admit(self, sid: str | None, event: str) -> Ack | None:
        """events.intake's gate for every client event: None dispatches it. Every event,
        refused or not, counts against the connection's rate."""
        conn = self.connections.get(sid) if sid is not None else None
        if conn is None or conn.closing:
            return {}  # not (or no longer) connected: dropped, as python-socketio would
        if not conn.bucket.take():
            if not conn.strikes.take():
                conn.closing = True
                # Here, in the reading task, so nothing it has read but not handled yet runs.
                self.close(sid, "rate_limited",
                           "too many events for too long; reconnect and slow down")
                return {}
            return error("rate_limited", "too many events; slow down")
        if event not in CLIENT_EVENTS:
            return error("not_found", f"unknown event {event[:100]!r}; client events are "
                                      f"{', '.join(sorted(CLIENT_EVENTS))}")
        return None

    def close(self, sid: str, code: str, message: str) -> None:
        """Tell the client why, disconnect it, and drop its transport so nothing more it
        sends is read. The client may reconnect and recover with `since`."""
        server = self.socketio.server
        eio_sid = server.manager.eio_sid_from_sid(sid, self.namespace)
        self.send_direct(sid, "connection.closing", {"code": code, "message": message})
        server.disconnect(sid, namespace=self.namespace)
        transport = server.eio.sockets.get(eio_sid) if eio_sid is not None else None
        if transport is not None:
            # Without waiting for its writer: the frames above go out first, then the close.
            transport.close(wait=False, reason=server.eio.reason.SERVER_DISCONNECT)

    def trigger_event(self, event: str, *args: Any) -> Any:
        # Event names are dotted (notifications.read); handlers are on_<snake_case>.
        name = HANDLERS.get(event)
        if name is None:
            return error("not_found", f"unknown event {event[:100]!r}")
        handler = getattr(self, name)
        sid, *rest = args
        if event == "connect":
            if sid in self.connections:
                return error("invalid", "already connected")  # only python-socketio connects
            rest = rest[1:2]  # python-socketio passes (environ, auth); handlers take auth
        elif event == "disconnect" and self.socketio.server.manager.is_connected(
                sid, self.namespace):
            # python-socketio marks a leaving client disconnected before telling us: a
            # connected client's "disconnect" is forged, and must not unregister it.
            return error("not_found", "unknown event 'disconnect'")
        try:
            # An app context, not Flask-SocketIO's per-event request context: handlers take
            # the sid explicitly, and URL matching plus session loading were ~15 % of the
            # CPU of a connect.
            with self.app.app_context():
                return handler(sid, *rest)
        except ConnectionRefusedError:
            raise
        except Exception as exc:
            # A client gets an error ack, never silence; the cause goes to our log.
            log.exception("socket event %s failed", event)
            if event == "connect":
                raise refuse("unavailable", "the hub cannot serve you right now") from exc
            return error("unavailable", "the hub cannot serve this right now; retry shortly")

    # -- lifecycle ---------------------------------------------------------------

    def on_connect(self, sid: str, auth: Any = None) -> None:
        auth = auth if isinstance(auth, dict) else {}
        try:
            identity = verify(self.settings.jwt_secret, auth.get("token"))
            since = parse_since(auth.get("since"))
        except TokenError as exc:
            raise refuse("unauthorized", str(exc)) from exc
        except ValueError as exc:
            raise refuse("invalid", str(exc)) from exc
        if self.per_user[identity.sub] >= self.settings.max_connections_per_user:
            raise refuse("rate_limited",
                         f"at most {self.settings.max_connections_per_user} connections per user")
        settings = self.settings
        bucket = TokenBucket(settings.event_rate, settings.event_burst)
        strikes = TokenBucket(settings.event_rate * settings.strike_ratio, settings.event_burst)
        self.connections[sid] = Connection(identity, bucket, strikes, {user_channel(identity.sub)})
        self.per_user[identity.sub] += 1
        self._start_expiry_loop()
        channel = user_channel(identity.sub)
        if since is None:
            self.enter_room(sid, room(channel))
        else:
            # Missed publications go out once the connection is established, before live ones.
            self.socketio.start_background_task(self._recover_personal, sid, channel, since)

    def on_disconnect(self, sid: str, reason: Any = None) -> None:
        conn = self.connections.pop(sid, None)
        if conn is not None:
            self.per_user[conn.identity.sub] -= 1
            if self.per_user[conn.identity.sub] <= 0:
                del self.per_user[conn.identity.sub]

    # -- client events -----------------------------------------------------------

    def on_subscribe(self, sid: str, data: Any = None) -> Ack:
        conn, refusal = self._admit(sid, data)
        if conn is None:
            return refusal
        channel = data.get("channel")
        try:
            since = parse_since(data.get("since"))
        except ValueError as exc:
            return error("invalid", str(exc))
        task_id = task_id_of(channel) if isinstance(channel, str) else None
        snapshot = self.task_lookup(task_id) if task_id else None
        decision = may_subscribe(
            conn.identity.sub, conn.identity.channels, channel,
            lambda _id: None if snapshot is None else (snapshot.get("user") or ""),
        )
        if not decision.allowed:
            return error(decision.code, decision.message)
        if channel not in conn.subscriptions and \
                len(conn.subscriptions) >= self.settings.max_subscriptions:
            return error("forbidden", f"at most {self.settings.max_subscriptions} subscriptions")
        with self.delivery_lock:
            recovery = current_publisher().recover(channel, since)
            self.enter_room(sid, room(channel))
            # Read under the lock too, so the snapshot is exactly as of ack.offset.
            if task_id is not None:
                snapshot = self.task_lookup(task_id)
        conn.subscriptions.add(channel)
        ack = ok(
            channel=channel, offset=recovery.position.offset, epoch=recovery.position.epoch,
            recovered=recovery.recovered, publications=recovery.publications,
        )
        if task_id is not None:
            ack["snapshot"] = snapshot
        return ack

    def on_unsubscribe(self, sid: str, data: Any = None) -> Ack:
        conn, refusal = self._admit(sid, data)
        if conn is None:
            return refusal
        channel = data.get("channel")
        if channel == user_channel(conn.identity.sub):
            # Joined on connect, like Centrifugo's server-side subscriptions: leaving it
            # would silently cut this tab off from its own notifications and task ends.
            return error("forbidden", f"{channel} stays joined for the whole connection")
        self.leave_room(sid, room(channel))
        conn.subscriptions.discard(channel)
        return ok()

    def on_notifications_read(self, sid: str, data: Any = None) -> Ack:
        conn = self.connections.get(sid)
        if conn is None:
            return error("unauthorized", "not connected")
        if not isinstance(data, dict):
            return error("invalid", "payload must be {ids: [...]} or {all: true}")
        ids, everything = data.get("ids"), data.get("all") is True
        valid_ids = isinstance(ids, list) and 0 < len(ids) <= 1000 and all(
            isinstance(i, int) and not isinstance(i, bool) and i > 0 for i in ids)
        if everything == valid_ids:
            return error("invalid", "give ids (1-1000 positive integers) or all: true")
        try:
            count = self.mark_read(conn.identity.sub, None if everything else ids)
        except LookupError as exc:
            return error("not_found", str(exc))
        return ok(unread_count=count)

    def on_refresh(self, sid: str, data: Any = None) -> Ack:
        conn = self.connections.get(sid)
        if conn is None:
            return error("unauthorized", "not connected")
        if not isinstance(data, dict):
            return error("invalid", "payload must be an object {token}")
        try:
            identity = verify(self.settings.jwt_secret, data.get("token"))
        except TokenError as exc:
            return error("unauthorized", str(exc))
        if identity.sub != conn.identity.sub:
            return error("forbidden", "a refreshed token must be for the same user")
        conn.identity = identity
        conn.warned = False
        return ok(expires_at=iso_from_unix(identity.exp))

    def on_presence(self, sid: str, data: Any = None) -> Ack:
        conn, refusal = self._admit(sid, data)
        if conn is None:
            return refusal
        return error("not_found", f"presence is not enabled on {data['channel'][:255]}")

    def on_tasks_cancel(self, sid: str, data: Any = None) -> Ack:
        conn = self.connections.get(sid)
        if conn is None:
            return error("unauthorized", "not connected")
        task_id = data.get("task_id") if isinstance(data, dict) else None
        if not isinstance(task_id, str) or not 0 < len(task_id) <= 255:
            return error("invalid", "payload must be an object {task_id}")
        record = self.task_lookup(task_id)
        if record is None:
            return error("not_found", f"no task {task_id}")
        if record.get("user") != conn.identity.sub:
            return error("forbidden", "only the task's owner may cancel it")
        if not self.cancel_task(task_id):
            return error("invalid", f"task {task_id} already ended ({record.get('state')})")
        return ok()

    # -- helpers -----------------------------------------------------------------

    def _admit(self, sid: str, data: Any) -> tuple[Connection | None, Ack]:
        """The checks every channel event shares: connected, payload shape (the rate was
        taken at the intake)."""
        conn = self.connections.get(sid)
        if conn is None:
            return None, error("unauthorized", "not connected")
        if not isinstance(data, dict) or not isinstance(data.get("channel"), str):
            return None, error("invalid", "payload must be an object with a channel")
        return conn, ok()

    def send_direct(self, sid: str, event: str, data: Any) -> None:
        """A message for one connection only, never through the queue (recovery, expiry)."""
        self.socketio.server.emit(event, data, to=sid, namespace=self.namespace,
                                  ignore_queue=True)

    def _recover_personal(self, sid: str, channel: str, since: Position) -> None:
        server = self.socketio.server
        for _ in range(500):  # the CONNECT packet goes out right after on_connect returns
            if sid not in self.connections or server.manager.is_connected(sid, self.namespace):
                break
            self.socketio.sleep(0.01)
        if sid not in self.connections:
            return
        with self.app.app_context(), self.delivery_lock:
            recovery = current_publisher().recover(channel, since)
            for publication in recovery.publications:
                self.send_direct(sid, publication["type"], publication)
            server.enter_room(sid, room(channel), namespace=self.namespace)

    def _start_expiry_loop(self) -> None:
        if not self._expiry_started:
            self._expiry_started = True
            self.socketio.start_background_task(self._expiry_loop)

    def _expiry_loop(self) -> None:
        while True:
            self.socketio.sleep(self.settings.expiry_check_interval)
            now = time.time()
            for sid, conn in list(self.connections.items()):
                if now >= conn.identity.exp:
                    self.close(sid, "unauthorized", "your token expired")
                elif not conn.warned and now >= conn.identity.exp - self.settings.expiry_warning:
                    conn.warned = True
                    self.send_direct(sid, "token.expiring",
                                     {"expires_at": iso_from_unix(conn.identity.exp)})


