"""engine.io websocket sessions served from eventlet's hub, without greenthreads that wait.

engine.io (python-engineio 4) keeps three greenthreads per websocket: the HTTP request's,
blocked reading; a writer, woken through a queue for every packet; and a pinger asleep
for 25 s. Each parked greenthread holds ~8 KB, and every packet sent costs a queue
hand-off, a timer and a switch: py-spy put ~73 % of a publication's CPU there.

Here, once an engine.io session is on a plain websocket (what hub.js and the bench open):

- writes go straight to the socket, without blocking, at the end of the event loop's
  turn (frames for one client in the same turn leave together); a frame is built once
  per packet and shared by every recipient (server frames are unmasked and, with
  compression declined, identical). A client whose socket buffer is full gets the
  rest from a flusher greenthread started for it alone, and is cut off past
  MAX_BACKLOG_BYTES; it reconnects and recovers from history.
- reads are a callback on eventlet's hub: readable bytes are parsed (hub.ws_frames) and
  handed to a short-lived greenthread that runs engine.io's receive() for them in order.
  The HTTP request's greenthread returns at once (hub.eventlet_http keeps the socket).
- pings are hub timers.

Everything else stays engine.io's: the handshake, polling, an upgrade from polling and a
connection that negotiated compression keep its own queue, writer and loop.
"""

import socket
import time
from collections import deque
from dataclasses import dataclass
from typing import Any

import engineio.exceptions
import engineio.socket
import eventlet
from engineio import packet as eio_packet
from eventlet import greenio
from eventlet.hubs import get_hub
from eventlet.websocket import RFC6455WebSocket

from hub import eventlet_http, ws_frames
from hub.ws_frames import FrameError, FrameReader

MAX_BACKLOG_BYTES = 4 * 1024 * 1024
READ_BYTES = 65536
# After the hub closes a connection, what it still reads from the peer and for how long:
# closing with unread bytes would reset the connection and lose our last frames.
LINGER_BYTES = 1024 * 1024
LINGER_SECONDS = 2.0

# An item of a session's inbox: a message or control frame, or the reason reading ended
# (None: the client closed or vanished).
InboxItem = tuple[int, str | bytes] | FrameError | None


@dataclass
class TransportStats:
    """For /metrics and the connection cap."""

    sessions: int = 0  # websockets served from the hub now
    max_sessions: int = 100_000  # more are closed with 1013 (try again later)
    refused: int = 0
    backlogged: int = 0  # times a client's socket was full and a flusher took over
    cut_off: int = 0  # clients disconnected for falling MAX_BACKLOG_BYTES behind

    @property
    def http_handlers(self) -> int:
        return len(eventlet_http.HANDLERS)


STATS = TransportStats()


def frame_for(pkt: eio_packet.Packet) -> bytes:
    """The packet's frame, built on first use and kept on the packet: python-socketio hands
    the same packet object to every recipient of an emit."""
    frame: bytes | None = pkt.__dict__.get("_hub_frame")
    if frame is None:
        frame = ws_frames.data_frame(pkt.encode())
        pkt._hub_frame = frame  # type: ignore[attr-defined]
    return frame


def hub_capable(ws: Any) -> bool:
    return isinstance(ws, RFC6455WebSocket) and ws.extensions.get("permessage-deflate") is None


class HubSocket(engineio.socket.Socket):
    """engine.io's Socket; a websocket-only session runs from eventlet's hub (see above)."""

    ws: RFC6455WebSocket | None = None
    # Bytes accepted but not yet written. Not None while a flusher owns the connection's
    # writes; every send appends here until the flusher has drained it.
    backlog: bytearray | None = None
    # Frames written this turn of the event loop, sent together when it ends.
    pending: list[bytes] | None = None
    close_when_flushed = False
    close_sent = False
    transport_closed = False
    linger = False  # the hub, not the peer, ended the session
    listener: Any = None
    ping_timer: Any = None  # the hub timer of the next ping, cancelled when the session closes
    processing = False

    # -- taking over the websocket -----------------------------------------------------

    def _websocket_handler(self, ws: Any) -> Any:
        if self.connected or not hub_capable(ws):
            return super()._websocket_handler(ws)
        if STATS.sessions >= STATS.max_sessions:
            # eventlet's pool no longer bounds these sockets (their greenthreads end): we do.
            STATS.refused += 1
            self.close(wait=False, abort=True, reason=self.server.reason.SERVER_DISCONNECT)
            ws.close(close_data=(ws_frames.CLOSE_TRY_AGAIN, "the hub is full"))
            return []
        STATS.sessions += 1
        eventlet_http.drop_request_entries(ws.environ)
        self.connected = self.upgraded = True
        self.reader = FrameReader(int(self.server.max_http_buffer_size))
        self.inbox: deque[InboxItem] = deque()
        self._drain_queue(ws)  # the OPEN packet, queued before the websocket existed
        self.ws = ws  # from here on every send writes directly
        hub = get_hub()
        self.listener = hub.add(hub.READ, ws.socket.fileno(), self._on_readable,
                                self._on_fd_closed, None)
        # Hand the connection over: eventlet must neither send a closing frame as this
        # handler returns nor close the socket as the request's greenthread ends.
        ws.websocket_closed = True
        ws.socket.hub_detached = True
        return []

    def _drain_queue(self, ws: RFC6455WebSocket) -> None:
        empty = self.server.get_queue_empty_exception()
        while True:
            try:
                pkt = self.queue.get(block=False)
            except empty:
                return
            self.queue.task_done()
            if pkt is not None:
                self._write(ws, frame_for(pkt))

    # -- reading: a hub callback, then a greenthread per burst -------------------------

    def _on_readable(self, _fileno: int) -> None:
        # Runs in eventlet's hub: nothing here may block or raise.
        ws = self.ws
        if ws is None:
            return
        try:
            data = ws.socket.fd.recv(READ_BYTES)
        except BlockingIOError:
            return
        except OSError:
            data = b""
        if not data:
            self._stop_reading()
            self._process_later(None)
            return
        try:
            items: list[InboxItem] = list(self.reader.feed(data))
        except FrameError as exc:
            self._stop_reading()
            items = [exc]
        for item in items:
            self._process_later(item)

    def _on_fd_closed(self, *_: Any) -> None:
        self.listener = None
        self._process_later(None)

    def _process_later(self, item: InboxItem) -> None:
        self.inbox.append(item)
        if not self.processing:
            self.processing = True
            eventlet.spawn_n(self._process)

    def _process(self) -> None:
        try:
            while self.inbox:
                # A session closed mid-burst (a flooder cut off) reads nothing more.
                if self.closed or not self._handle(self.inbox.popleft()):
                    self.inbox.clear()
                    return
        finally:
            self.processing = False

    def _handle(self, item: InboxItem) -> bool:
        """One inbox item; False when the session is over."""
        ws = self.ws
        if ws is None or item is None or isinstance(item, FrameError):
            if isinstance(item, FrameError) and ws is not None:
                self.server.logger.info("%s: %s; closing", self.sid, item)
                self._write(ws, ws_frames.close_frame(item.code))
                self.close_sent = True
            self.close(wait=False, abort=True, reason=self.server.reason.TRANSPORT_CLOSE)
            return False
        opcode, payload = item
        if opcode == ws_frames.OP_PING:
            assert isinstance(payload, bytes)
            self._write(ws, ws_frames.frame(ws_frames.OP_PONG, payload))
            return True
        if opcode == ws_frames.OP_PONG:
            return True
        if opcode == ws_frames.OP_CLOSE:
            self.close(wait=False, abort=True, reason=self.server.reason.CLIENT_DISCONNECT)
            return False
        try:
            self.receive(eio_packet.Packet(encoded_packet=payload))
        except engineio.exceptions.UnknownPacketError:
            return True
        except engineio.exceptions.SocketIsClosedError:
            return False
        except Exception:  # as engine.io does: log, and end the session cleanly
            self.server.logger.exception("%s: receive error", self.sid)
            self.close(wait=False, abort=True, reason=self.server.reason.TRANSPORT_ERROR)
            return False
        return True

    def _stop_reading(self) -> None:
        if self.listener is not None:
            get_hub().remove(self.listener)
            self.listener = None

    # -- writing -----------------------------------------------------------------------

    def send(self, pkt: eio_packet.Packet) -> None:
        ws = self.ws
        if ws is None:  # handshake, polling, an upgrade, or compression: engine.io's queue
            super().send(pkt)
            return
        if self.closed or not self.check_ping_timeout():
            return
        self._write(ws, frame_for(pkt))

    def _write(self, ws: RFC6455WebSocket, frame: bytes) -> None:
        """Queue a frame for the end of this turn of the event loop: frames sent to one
        client in the same turn (a burst of publications) leave in one write, which is
        what Nagle would do without its delayed-ACK stalls (TCP_NODELAY is on)."""
        if self.transport_closed:
            return
        if self.pending is None:
            self.pending = [frame]
            _end_of_turn(self)
        else:
            self.pending.append(frame)

    def _send_pending(self) -> None:
        # Runs in eventlet's hub at the end of a turn: never blocks.
        frames, self.pending = self.pending, None
        ws = self.ws
        if not frames or ws is None or self.transport_closed:
            return
        data = frames[0] if len(frames) == 1 else b"".join(frames)
        if self.backlog is None and not ws._sendlock.locked():
            try:
                sent = ws.socket.fd.send(data)
            except BlockingIOError:
                sent = 0
            except OSError:  # the connection is going away: nothing more to write
                sent = len(data)
            if sent == len(data):
                if self.close_when_flushed:
                    eventlet.spawn_n(self._close_transport, ws)
                return
            data = data[sent:]
        if self.backlog is None:
            STATS.backlogged += 1
            self.backlog = bytearray(data)
            eventlet.spawn_n(self._flush, ws)
        elif len(self.backlog) + len(data) > MAX_BACKLOG_BYTES:
            self._cut_off(ws)
        else:
            self.backlog += data

    def _flush(self, ws: RFC6455WebSocket) -> None:
        try:
            while self.backlog:
                data, self.backlog = bytes(self.backlog), bytearray()
                ws._send(data)  # eventlet's locked sendall: waits for the client to read
        except OSError:
            pass
        finally:
            self.backlog = None
        if self.close_when_flushed and self.pending is None:
            self._close_transport(ws)

    def _cut_off(self, ws: RFC6455WebSocket) -> None:
        STATS.cut_off += 1
        self.server.logger.warning("%s: client is %d bytes behind; disconnecting it",
                                   self.sid, len(self.backlog or b""))
        self.backlog = bytearray()  # drop what it will never read; the flusher ends
        try:
            ws.socket.fd.shutdown(socket.SHUT_RDWR)  # reading sees the end and closes
        except OSError:
            pass

    # -- closing and pings -------------------------------------------------------------

    def close(self, wait: bool = True, abort: bool = False, reason: Any = None) -> None:
        # A pending ping timer would keep the whole closed session alive for up to
        # ping_interval: 1000 clients leaving left ~30k objects for the garbage collector.
        if self.ping_timer is not None:
            self.ping_timer.cancel()
            self.ping_timer = None
        ws = self.ws
        if ws is None:
            super().close(wait=wait, abort=abort, reason=reason)
            return
        # No writer to wait for: the CLOSE packet (unless aborting) is already written or in
        # the backlog; then the transport closes.
        self.linger = reason == self.server.reason.SERVER_DISCONNECT
        super().close(wait=False, abort=abort, reason=reason)
        # engine.io forgets closed sessions in a sweep that visits one session per
        # ping_timeout / sessions seconds; until then each holds its socket, buffers and
        # environ, which every full garbage collection has to traverse.
        self.server.sockets.pop(self.sid, None)
        if self.backlog is None and self.pending is None:
            self._close_transport(ws)
        else:
            self.close_when_flushed = True  # after the last frames are out

    def _close_transport(self, ws: RFC6455WebSocket) -> None:
        if self.transport_closed:
            return
        self._stop_reading()
        if not self.close_sent:
            try:
                ws.socket.fd.send(ws_frames.close_frame())  # best effort: never blocks
            except OSError:
                pass
        self.transport_closed = True
        STATS.sessions -= 1
        if self.linger:
            eventlet.spawn_n(linger_and_close, ws.socket)
            return
        greenio.shutdown_safe(ws.socket)
        ws.socket.close()

    def schedule_ping(self) -> None:
        """engine.io parks a greenthread per connection in sleep(ping_interval); a hub timer
        costs a few hundred bytes instead."""
        if self.last_ping:
            self.last_ping = None
            self.ping_timer = get_hub().schedule_call_global(self.server.ping_interval,
                                                             self._ping_due)

    def _ping_due(self) -> None:
        self.ping_timer = None
        # Timers run in eventlet's hub, where nothing may block: send from a greenthread.
        if not self.closing and not self.closed:
            eventlet.spawn_n(self._send_ping_now)

    def _send_ping_now(self) -> None:
        if not self.closing and not self.closed:
            self.last_ping = time.time()
            self.send(eio_packet.Packet(eio_packet.PING))


_turn: list[HubSocket] = []  # sockets with pending frames, in the order they got them


def _end_of_turn(sock: HubSocket) -> None:
    if not _turn:
        get_hub().schedule_call_global(0, _send_turn)
    _turn.append(sock)


def _send_turn() -> None:
    sockets = list(_turn)
    _turn.clear()
    for sock in sockets:
        try:
            sock._send_pending()
        except Exception:  # one broken connection must not stop the others' writes
            sock.server.logger.exception("%s: write failed", sock.sid)


def install(max_sessions: int) -> TransportStats:
    """Make engine.io create HubSocket for every new session in this process.
    engine.io builds sessions with `socket.Socket(server, sid)`, a module lookup."""
    engineio.socket.Socket = HubSocket  # type: ignore[misc]
    STATS.max_sessions = max_sessions
    return STATS


def linger_and_close(sock: Any) -> None:
    """Send our FIN, then read and drop what the peer still sends (bounded) before closing:
    a close with unread bytes resets the connection, and the peer may then lose the frames
    that tell it why (connection.closing, the CLOSE packet)."""
    try:
        sock.fd.shutdown(socket.SHUT_WR)
        drained = 0
        with eventlet.Timeout(LINGER_SECONDS, False):
            while drained < LINGER_BYTES:
                chunk = sock.recv(READ_BYTES)
                if not chunk:
                    break
                drained += len(chunk)
    except OSError:
        pass
    finally:
        sock.close()
