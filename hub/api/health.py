"""Liveness, readiness and Prometheus metrics (no auth: they reveal no data)."""

import gc
from typing import Any

from flask import Blueprint, Response, current_app
from sqlalchemy import text

from events import current_publisher
from events.redis_backend import RedisBackend, connect
from hub import heap
from models import db

bp = Blueprint("health", __name__)
READY_TIMEOUT = 0.5  # seconds for the readiness ping; the whole check answers within 1 s


@bp.get("/healthz")
def healthz() -> dict[str, str]:
    return {"status": "ok"}


def redis_answers() -> bool:
    """Ping Redis on a client of its own with a sub-second timeout and one quick retry, so
    /readyz answers promptly (red) while Redis is stalled or unreachable."""
    backend = current_publisher().backend
    if not isinstance(backend, RedisBackend):
        return backend.ping()
    probe = current_app.extensions.get("hub.redis_probe")
    if probe is None:
        probe = connect(current_app.config["REDIS_URL"], timeout=READY_TIMEOUT, retries=1)
        current_app.extensions["hub.redis_probe"] = probe
    return bool(probe.ping())


def readiness() -> dict[str, bool]:
    checks: dict[str, bool] = {}
    try:
        db.session.execute(text("SELECT 1"))
        checks["database"] = True
    except Exception:
        checks["database"] = False
    try:
        checks["redis"] = redis_answers()
    except Exception:
        checks["redis"] = False
    manager = current_app.extensions.get("hub.manager")
    if manager is not None:
        checks["listener"] = manager.listening()
    return checks


@bp.get("/readyz")
def readyz() -> tuple[dict[str, Any], int]:
    checks = readiness()
    ready = all(checks.values())
    return {"status": "ready" if ready else "unavailable", "checks": checks}, 200 if ready else 503


@bp.get("/metrics")
def metrics() -> Response:
    namespace = current_app.extensions.get("hub.namespace")
    connections = len(namespace.connections) if namespace else 0
    subscriptions = sum(len(c.subscriptions) for c in namespace.connections.values()) \
        if namespace else 0
    lines = [
        "# HELP hub_connections Socket.IO connections on this hub process.",
        "# TYPE hub_connections gauge",
        f"hub_connections {connections}",
        "# HELP hub_subscriptions Channel subscriptions on this hub process.",
        "# TYPE hub_subscriptions gauge",
        f"hub_subscriptions {subscriptions}",
        "# HELP hub_ready Whether a dependency check passes (1) or not (0).",
        "# TYPE hub_ready gauge",
    ]
    lines += [f'hub_ready{{check="{name}"}} {int(ok)}' for name, ok in readiness().items()]
    socketio = current_app.extensions.get("socketio")
    if socketio is not None and socketio.server is not None:
        lines += [
            "# HELP hub_engineio_sessions engine.io sessions this process holds, including"
            " closed ones it has not released yet.",
            "# TYPE hub_engineio_sessions gauge",
            f"hub_engineio_sessions {len(socketio.server.eio.sockets)}",
        ]
    if heap.PAUSES.observe in gc.callbacks:  # run.py web times them
        lines += [
            "# HELP hub_gc_collections_total Garbage collections, by generation (2: full).",
            "# TYPE hub_gc_collections_total counter",
            *(f'hub_gc_collections_total{{generation="{g}"}} {n}'
              for g, n in enumerate(heap.PAUSES.collections)),
            "# HELP hub_gc_pause_seconds_total Time garbage collections stopped the process.",
            "# TYPE hub_gc_pause_seconds_total counter",
            *(f'hub_gc_pause_seconds_total{{generation="{g}"}} {s:.6f}'
              for g, s in enumerate(heap.PAUSES.seconds)),
            "# HELP hub_gc_pause_seconds_max The longest single collection since start.",
            "# TYPE hub_gc_pause_seconds_max gauge",
            *(f'hub_gc_pause_seconds_max{{generation="{g}"}} {s:.6f}'
              for g, s in enumerate(heap.PAUSES.longest)),
        ]
    stats = current_app.extensions.get("hub.transport_stats")
    if stats is not None:
        lines += [
            "# HELP hub_ws_backlogged_total Times a client's socket was full and its writes"
            " were handed to a flusher.",
            "# TYPE hub_ws_backlogged_total counter",
            f"hub_ws_backlogged_total {stats.backlogged}",
            "# HELP hub_ws_cut_off_total Clients disconnected for falling too far behind.",
            "# TYPE hub_ws_cut_off_total counter",
            f"hub_ws_cut_off_total {stats.cut_off}",
            "# HELP hub_ws_refused_total Websockets closed at HUB_MAX_CONNECTIONS.",
            "# TYPE hub_ws_refused_total counter",
            f"hub_ws_refused_total {stats.refused}",
            "# HELP hub_http_handlers HTTP request handlers alive (a websocket releases its"
            " own once the hub serves it).",
            "# TYPE hub_http_handlers gauge",
            f"hub_http_handlers {stats.http_handlers}",
        ]
    return Response("\n".join(lines) + "\n", mimetype="text/plain; version=0.0.4")
