"""The hub's web process under uWSGI (deploy/uwsgi.ini): `application` for --wsgi-file.

uWSGI's gevent loop serves the requests. uWSGI hands a WSGI app no socket, so Engine.IO
cannot upgrade to a websocket on its own ("Cannot obtain socket from WSGI environment").
Two ways, by HUB_ASYNC_MODE:

- gevent (the default here): HandOverSocket gives Engine.IO the connection's socket and
  simple-websocket speaks the protocol on it. Works with the pyuwsgi wheel.
- gevent_uwsgi: Flask-SocketIO's mode for uWSGI's own websocket API. Its handshake needs a
  uWSGI built with SSL; the pyuwsgi wheel is not ("unable to complete websocket handshake").
"""

from gevent import monkey

# Sockets, locks and threads must be gevent's before the app opens a Redis connection.
# uWSGI's gevent-early-monkey-patch does it first; this covers a command line without it.
if not monkey.is_module_patched("socket"):
    monkey.patch_all()

import os  # noqa: E402 - the monkey patch goes first, on purpose
import socket  # noqa: E402
from collections.abc import Callable, Iterable  # noqa: E402
from typing import Any  # noqa: E402

import uwsgi  # noqa: E402 - the module uWSGI gives the apps it runs

from hub import create_app  # noqa: E402
from hub.heap import settle_after_start_up, time_collections  # noqa: E402

MODES = ("gevent", "gevent_uwsgi")
WSGIApp = Callable[[dict[str, Any], Callable[..., Any]], Iterable[bytes]]


class HandOverSocket:
    """Put the client connection's socket where simple-websocket looks for Gunicorn's, on
    websocket upgrades only; everything else goes through uWSGI as usual."""

    def __init__(self, app: WSGIApp) -> None:
        self.app = app

    def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Any:
        if environ.get("HTTP_UPGRADE", "").lower() != "websocket":
            return self.app(environ, start_response)
        # A duplicate: simple-websocket closes its socket, uWSGI closes the request's fd.
        environ["gunicorn.socket"] = socket.socket(fileno=os.dup(uwsgi.connection_fd()))
        try:
            return self.app(environ, start_response)
        except StopIteration:
            # Engine.IO's way of telling Gunicorn that the websocket wrote its own bytes.
            return []


def async_mode() -> str:
    mode = os.environ.get("HUB_ASYNC_MODE") or "gevent"
    if mode not in MODES:
        raise RuntimeError(f"under uWSGI HUB_ASYNC_MODE must be one of {', '.join(MODES)}, "
                           f"not {mode!r}")
    return mode


def build() -> WSGIApp:
    mode = async_mode()
    app = create_app({"HUB_PROCESS": "web", "HUB_ASYNC_MODE": mode})
    settle_after_start_up()
    time_collections()  # /metrics: the pauses every client of this process waits through
    return HandOverSocket(app) if mode == "gevent" else app


application = build()
