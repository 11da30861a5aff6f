"""The web process's Socket.IO server: transport, message queue, namespace."""

import threading
from collections.abc import Callable, Iterable
from typing import Any

from flask import Flask
from flask_socketio import SocketIO

from events import MemoryBackend, intake
from events.manager import HubRedisManager, local_deliver
from events.namespace import HubNamespace, SocketSettings
from tasks import inbox, lifecycle
from tasks.lifecycle import task_record

WSGIApp = Callable[[dict[str, Any], Callable[..., Any]], Iterable[bytes]]


class StripWebSocketExtensions:
    """Decline permessage-deflate: accepting the browser's offer costs ~3x CPU per delivery
    and ~100 KB per connection, for small JSON messages that barely compress."""

    def __init__(self, app: WSGIApp) -> None:
        self.app = app

    def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Any:
        environ.pop("HTTP_SEC_WEBSOCKET_EXTENSIONS", None)
        return self.app(environ, start_response)


def start_listener(socketio: SocketIO) -> None:
    """Start the message-queue listener on the first HTTP request (a /readyz probe will do),
    not only on the first Socket.IO connection: readiness depends on it, and processes that
    never serve (CLI commands) never start it."""
    server = socketio.server
    if not server.manager_initialized:
        server.manager_initialized = True
        server.manager.initialize()


def cancel_task(task_id: str) -> bool:
    return lifecycle.cancel(task_id) is not None


def init_realtime(app: Flask, backend: object) -> SocketIO:
    config = app.config
    options: dict[str, Any] = {
        "async_mode": config["HUB_ASYNC_MODE"],
        "cors_allowed_origins": config["HUB_CORS_ORIGINS"] or None,  # None: same origin only
        "max_http_buffer_size": config["HUB_MAX_MESSAGE_BYTES"],
        "manage_session": False,
        "logger": False,
        "engineio_logger": False,
    }
    if config["HUB_ASYNC_MODE"] == "eventlet":
        from hub import eventlet_ws  # imports eventlet: only in eventlet mode

        app.extensions["hub.transport_stats"] = eventlet_ws.install(
            config["HUB_MAX_CONNECTIONS"])
    socketio = SocketIO()
    if isinstance(backend, MemoryBackend):
        lock: Any = threading.Lock()
        manager = None
    else:
        manager = HubRedisManager(config["REDIS_URL"],
                                  channel=f"{config['HUB_REDIS_PREFIX']}:socketio")
        options["client_manager"] = manager
        lock = manager.delivery_lock
    socketio.init_app(app, **options)
    if isinstance(backend, MemoryBackend):
        backend.deliver = local_deliver(socketio.server)
    settings = SocketSettings(
        jwt_secret=config["HUB_JWT_SECRET"],
        max_subscriptions=config["HUB_MAX_SUBSCRIPTIONS"],
        max_connections_per_user=config["HUB_MAX_CONNECTIONS_PER_USER"],
        event_rate=config["HUB_SOCKET_RATE"],
        event_burst=config["HUB_SOCKET_RATE"] * 2,
        expiry_check_interval=config["HUB_TOKEN_CHECK_SECONDS"],
    )
    namespace = HubNamespace(app, settings, task_record, inbox.mark_read, cancel_task,
                             delivery_lock=lock)
    socketio.on_namespace(namespace)
    intake.install(socketio.server, namespace.admit)
    if not config["HUB_WS_COMPRESSION"]:
        app.wsgi_app = StripWebSocketExtensions(app.wsgi_app)  # type: ignore[method-assign]
    if manager is not None:
        app.before_request(lambda: start_listener(socketio))
    app.extensions["hub.manager"] = manager
    app.extensions["hub.namespace"] = namespace
    return socketio
