"""Websocket delivery without engine.io's per-connection writer hop (eventlet only).

engine.io queues every outgoing packet and a writer greenthread per connection wakes up to
write it. A publication to 1000 clients is then 1000 queue hand-offs, 1000 timers and 1000
greenthread switches; py-spy put ~73 % of the web process's CPU there. Here a send on an
established, uncompressed websocket writes the frame straight to the socket from the
sending greenthread, without blocking. The frame bytes are built once per packet and
shared by every recipient: server frames are unmasked, so they are the same for all.

A client whose socket buffer is full gets the rest from a flusher greenthread started for
it alone, so one slow reader never stalls delivery to the others. A client that falls more
than MAX_BACKLOG_BYTES behind is cut off; it reconnects and recovers from history.

Everything else stays engine.io's: the handshake, polling, the upgrade from polling,
pings and close all go through its queue until that queue is empty.
"""

import socket
import struct
import time
from dataclasses import dataclass
from typing import Any

import engineio.exceptions
import engineio.socket
import eventlet
from engineio import packet as eio_packet
from eventlet.hubs import get_hub
from eventlet.websocket import RFC6455WebSocket

MAX_BACKLOG_BYTES = 4 * 1024 * 1024

_FIN_TEXT = 0x81
_FIN_BINARY = 0x82


@dataclass
class WriteStats:
    """Counters for /metrics: how often a client could not keep up."""

    backlogged: int = 0  # times a client's socket was full and a flusher took over
    cut_off: int = 0  # clients disconnected for falling MAX_BACKLOG_BYTES behind


STATS = WriteStats()


def websocket_frame(payload: str | bytes) -> bytes:
    """One final, unmasked, uncompressed RFC 6455 data frame (what a server sends)."""
    if isinstance(payload, str):
        data, first = payload.encode(), _FIN_TEXT
    else:
        data, first = payload, _FIN_BINARY
    size = len(data)
    if size < 126:
        header = bytes((first, size))
    elif size < 65536:
        header = struct.pack("!BBH", first, 126, size)
    else:
        header = struct.pack("!BBQ", first, 127, size)
    return header + data


def frame_for(pkt: eio_packet.Packet) -> bytes:
    """The packet's frame, built on first use and kept on the packet: python-socketio hands
    the same packet object to every recipient of an emit."""
    frame: bytes | None = pkt.__dict__.get("_hub_frame")
    if frame is None:
        frame = websocket_frame(pkt.encode())
        pkt._hub_frame = frame  # type: ignore[attr-defined]
    return frame


def direct_capable(ws: Any) -> bool:
    return isinstance(ws, RFC6455WebSocket) and ws.extensions.get("permessage-deflate") is None


class DirectWriteSocket(engineio.socket.Socket):
    """engine.io's Socket, with sends on an open websocket written straight out.

    A websocket-only connection (what hub.js and the load clients open) also runs without
    engine.io's writer greenthread and its sleeping ping greenthread: each parked
    greenthread holds ~8 KB, and these two were most of a connection's memory. An upgrade
    from polling, or a connection that negotiated compression, keeps engine.io's own loop.
    """

    ws: RFC6455WebSocket | None = None
    # Bytes accepted but not yet written. Not None while a flusher owns the connection's
    # writes; every send appends here until the flusher has drained it.
    backlog: bytearray | None = None
    close_when_flushed = False
    ws_closed = False

    def _websocket_handler(self, ws: Any) -> Any:
        if self.connected or not direct_capable(ws):
            return super()._websocket_handler(ws)
        ws.socket.settimeout(self.server.ping_interval + self.server.ping_timeout)
        self.connected = self.upgraded = True
        self._drain_queue(ws)  # the OPEN packet, queued before the websocket existed
        self.ws = ws  # from here on every send writes directly
        try:
            self._read_loop(ws)
        finally:
            self.close(wait=False, abort=True, reason=self.server.reason.TRANSPORT_CLOSE)
        return []

    def _read_loop(self, ws: RFC6455WebSocket) -> None:
        while True:
            try:
                data = ws.wait()  # None: the client closed; frames over the limit raise
            except Exception as exc:  # noqa: BLE001 - any transport error ends the session
                if not self.closed:
                    self.server.logger.info("%s: websocket error %r, closing", self.sid, exc)
                return
            if data is None:
                return
            try:
                self.receive(eio_packet.Packet(encoded_packet=data))
            except engineio.exceptions.UnknownPacketError:
                continue
            except engineio.exceptions.SocketIsClosedError:
                return
            except Exception:  # as engine.io does: log, and end the session cleanly
                self.server.logger.exception("%s: receive error", self.sid)
                return

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

    def send(self, pkt: eio_packet.Packet) -> None:
        ws = self.ws
        if ws is None:  # handshake, polling, an upgrade, or compression: engine.io's queue
            super().send(pkt)
            return
        if self.closed or not self.check_ping_timeout():
            return
        self._write(ws, frame_for(pkt))

    def close(self, wait: bool = True, abort: bool = False, reason: Any = None) -> None:
        ws = self.ws
        if ws is None:
            super().close(wait=wait, abort=abort, reason=reason)
            return
        # No writer to wait for: the CLOSE packet (unless aborting) is already written or in
        # the backlog; then the websocket closes, which also ends the read loop.
        super().close(wait=False, abort=abort, reason=reason)
        if self.backlog is None:
            self._close_ws(ws)
        else:
            self.close_when_flushed = True

    def _close_ws(self, ws: RFC6455WebSocket) -> None:
        if not self.ws_closed:
            self.ws_closed = True
            ws.close()

    def schedule_ping(self) -> None:
        """engine.io parks a greenthread per connection in sleep(ping_interval); a hub timer
        costs a few hundred bytes instead."""
        if self.last_ping:
            self.last_ping = None
            get_hub().schedule_call_global(self.server.ping_interval, self._ping_due)

    def _ping_due(self) -> None:
        # Timers run in eventlet's hub, where nothing may block: send from a greenthread.
        if not self.closing and not self.closed:
            eventlet.spawn_n(self._send_ping_now)

    def _send_ping_now(self) -> None:
        if not self.closing and not self.closed:
            self.last_ping = time.time()
            self.send(eio_packet.Packet(eio_packet.PING))

    def _write(self, ws: RFC6455WebSocket, frame: bytes) -> None:
        # Greenthreads switch only on blocking calls, so nothing below can interleave with
        # another send: the checks and the write are one step.
        if self.backlog is None and not ws._sendlock.locked():
            try:
                sent = ws.socket.fd.send(frame)
            except BlockingIOError:
                sent = 0
            except OSError:
                return  # the connection is going away; its reader sees that and closes
            if sent == len(frame):
                return
            frame = frame[sent:]
        if self.backlog is None:
            STATS.backlogged += 1
            self.backlog = bytearray(frame)
            self.server.start_background_task(self._flush, ws)
        elif len(self.backlog) + len(frame) > MAX_BACKLOG_BYTES:
            self._cut_off(ws)
        else:
            self.backlog += frame

    def _flush(self, ws: RFC6455WebSocket) -> None:
        try:
            while self.backlog:
                data, self.backlog = bytes(self.backlog), bytearray()
                ws._send(data)  # eventlet's locked sendall: waits for the client to read
        except OSError:
            pass
        finally:
            self.backlog = None
        if self.close_when_flushed:
            self._close_ws(ws)

    def _cut_off(self, ws: RFC6455WebSocket) -> None:
        STATS.cut_off += 1
        self.server.logger.warning("%s: client is %d bytes behind; disconnecting it",
                                   self.sid, len(self.backlog or b""))
        self.backlog = bytearray()  # drop what it will never read; the flusher ends
        try:
            ws.socket.fd.shutdown(socket.SHUT_RDWR)  # its reader ends and closes the session
        except OSError:
            pass


def install() -> WriteStats:
    """Make engine.io create DirectWriteSocket for every new session in this process.
    engine.io builds sessions with `socket.Socket(server, sid)`, a module lookup."""
    engineio.socket.Socket = DirectWriteSocket  # type: ignore[misc]
    return STATS
