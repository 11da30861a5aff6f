"""The eventlet web server: a deep listen queue, small per-connection buffers, and
websockets that outlive their HTTP request's greenthread.

Flask-SocketIO's `run` listens with eventlet's default backlog of 50. When clients connect
faster than one accept loop takes them (a reconnect storm, a deploy), the kernel drops
the overflow and each dropped client retries its SYN a second later: the bench counted
thousands of ListenOverflows at 1k-10k clients. Node listens with 511.

eventlet gives every connection a 16 KB write buffer and an 8 KB read buffer. A websocket
keeps its HTTP connection open for hours but uses those buffers only for the upgrade
request. 2 KB holds a handshake or an ordinary request's line and headers; larger bodies
and responses bypass a buffered file's buffer anyway (one extra write per response at
most).

A websocket that hub.eventlet_ws has taken over (it marks the socket `hub_detached`) is
read from eventlet's hub, so its request's greenthread ends; eventlet would then close
the socket, twice over (finish, then the server's connection cleanup). Here it does not.
"""

import socket
import weakref
from http.server import BaseHTTPRequestHandler
from typing import Any

import eventlet
import eventlet.wsgi

LISTEN_BACKLOG = 1024
BUFFER_BYTES = 2048
# environ entries that serve the HTTP request alone (its body, eventlet's keep-alive state).
REQUEST_ONLY_KEYS = ("eventlet.set_idle", "eventlet.input", "wsgi.input", "eventlet.posthooks")


class _HandedOver:
    """Stands in for a handed-over socket in eventlet's connection record, whose cleanup
    shuts down and closes whatever it holds."""

    def shutdown(self, *_: Any) -> None:
        pass

    def close(self) -> None:
        pass


# Request handlers alive (/metrics): connections being served over HTTP. A websocket hands
# its handler over, so this stays near the number of requests in flight.
HANDLERS: "weakref.WeakSet[HubHttpProtocol]" = weakref.WeakSet()


class HubHttpProtocol(eventlet.wsgi.HttpProtocol):
    rbufsize = BUFFER_BYTES
    wbufsize = BUFFER_BYTES

    def setup(self) -> None:
        HANDLERS.add(self)
        # A publication is one small frame per client. With Nagle on, a frame that follows
        # an unacknowledged one waits for the client's delayed ACK: ~40 ms at the tail
        # (seen in the bench with 50 clients; Node sets TCP_NODELAY by default).
        self.request.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        super().setup()

    def finish(self) -> None:
        # The last request's environ and this handler reach each other (a cycle): break it,
        # so the connection is freed when it ends instead of at a garbage collection.
        drop_request_entries(getattr(self, "environ", None) or {})
        if not getattr(self.connection, "hub_detached", False):
            super().finish()
            return
        try:
            BaseHTTPRequestHandler.finish(self)  # flushes and drops the buffered files only
        except OSError:
            pass
        self.conn_state[1] = _HandedOver()


def drop_request_entries(environ: dict[str, Any]) -> None:
    """Forget what served the HTTP request alone. eventlet's entries reach back to its
    protocol object (a `set_idle` closure) and that object's buffered files: a cycle with
    the handler's own environ (broken in `finish`). A websocket session also keeps a copy
    (Flask-SocketIO's) for as long as it lives (dropped at the hand-over): that kept ~30
    objects per connection alive and, once the session closed, left them for a full
    garbage collection to find."""
    for key in REQUEST_ONLY_KEYS:
        environ.pop(key, None)


def listen(host: str, port: int) -> Any:
    """A listening socket with SO_REUSEPORT, so several web processes can share the port."""
    family, _, _, _, address = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)[0]
    return eventlet.listen(address, family, backlog=LISTEN_BACKLOG, reuse_port=True)


def serve(app: Any, host: str, port: int, max_connections: int) -> None:
    eventlet.wsgi.server(listen(host, port), app, log_output=False, max_size=max_connections,
                         protocol=HubHttpProtocol)
