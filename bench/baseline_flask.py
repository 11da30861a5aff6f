"""The stack's floor: bare Flask-SocketIO on eventlet with the Redis message queue.

    python bench/baseline_flask.py --port P --redis URL [--deflate] [--async-mode gevent]
                                   [--hub-transport]

No auth, no history, no limits: a `subscribe` event joins a room and acks, and
`POST /publish {channel, type, data}` emits the type to that room through the queue
(as Hub does), in Hub's envelope shape. Hub's own work is what it costs above this.

--hub-transport gives the floor Hub's eventlet transport (websockets served from the
hub with direct writes, small HTTP buffers, a deep listen queue) and its garbage-collector
settings, so that Hub against this floor isolates Hub's own work: auth, channel rules,
envelopes, history.
"""

import argparse
import warnings


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--redis", required=True)
    parser.add_argument("--deflate", action="store_true", help="accept permessage-deflate")
    parser.add_argument("--async-mode", default="eventlet", choices=["eventlet", "gevent"])
    parser.add_argument("--nodelay", action="store_true",
                        help="TCP_NODELAY on accepted sockets (an experiment: Nagle vs p99)")
    parser.add_argument("--hub-transport", action="store_true",
                        help="Hub's eventlet transport (hub.eventlet_ws, hub.eventlet_http)")
    args = parser.parse_args()
    if args.async_mode == "eventlet":
        warnings.filterwarnings("ignore", message="\\s*Eventlet is deprecated")
        import eventlet

        eventlet.monkey_patch()
    else:
        from gevent import monkey

        monkey.patch_all()
    if args.nodelay:
        nodelay_on_accept()
    serve(args.port, args.redis, args.deflate, args.async_mode, args.hub_transport)


def nodelay_on_accept() -> None:
    """Set TCP_NODELAY on every accepted socket (the servers' default leaves Nagle on)."""
    import socket

    from eventlet.greenio import GreenSocket

    accept = GreenSocket.accept

    def accept_nodelay(self: GreenSocket) -> tuple[GreenSocket, object]:
        client, address = accept(self)
        client.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        return client, address

    GreenSocket.accept = accept_nodelay  # type: ignore[method-assign]


def serve(port: int, redis_url: str, deflate: bool, async_mode: str,
          hub_transport: bool) -> None:
    from datetime import UTC, datetime
    from typing import Any

    from flask import Flask, jsonify, request
    from flask_socketio import SocketIO, join_room

    app = Flask(__name__)
    socketio = SocketIO(app, async_mode=async_mode, message_queue=redis_url,
                        channel="bench-flask", manage_session=False, logger=False,
                        engineio_logger=False, cors_allowed_origins=None)
    # Listen on the queue from the start, as Hub does and as this server does once a first
    # client connects (python-socketio starts its listener then). Without it, a scenario
    # with no clients (REST) spared the floor reading back its own publications.
    socketio.server.manager_initialized = True
    socketio.server.manager.initialize()
    offsets: dict[str, int] = {}

    @socketio.on("subscribe")
    def subscribe(data: Any) -> dict[str, Any]:
        channel = data.get("channel") if isinstance(data, dict) else None
        if not isinstance(channel, str):
            return {"ok": False, "error": {"code": "invalid"}}
        join_room("ch:" + channel)
        return {"ok": True, "channel": channel, "offset": offsets.get(channel, 0), "epoch": "ref"}

    @app.post("/publish")
    def publish() -> Any:
        message = request.get_json()
        channel = message["channel"]
        offsets[channel] = offset = offsets.get(channel, 0) + 1
        envelope = {"channel": channel, "offset": offset, "epoch": "ref",
                    "type": message["type"], "data": message.get("data"),
                    "ts": datetime.now(UTC).isoformat(), "trace_id": ""}
        socketio.emit(message["type"], envelope, to="ch:" + channel)
        return jsonify({"channel": channel, "offset": offset, "epoch": "ref"}), 202

    @app.get("/readyz")
    def readyz() -> Any:
        return jsonify({"ready": True})

    if not deflate:
        inner = app.wsgi_app

        def strip_extensions(environ: dict[str, Any], start_response: Any) -> Any:
            environ.pop("HTTP_SEC_WEBSOCKET_EXTENSIONS", None)
            return inner(environ, start_response)

        app.wsgi_app = strip_extensions  # type: ignore[method-assign]
    options: dict[str, Any] = {"log_output": False}
    if async_mode == "eventlet":
        options["max_size"] = 100_000
    if hub_transport and async_mode == "eventlet":
        from hub import eventlet_http, eventlet_ws
        from hub.heap import settle_after_start_up

        # Hub's runtime settings too (its garbage-collector tuning), so that Hub against
        # this floor is Hub's own work alone.
        settle_after_start_up()
        eventlet_ws.install(max_sessions=100_000)
        eventlet_http.serve(app, "127.0.0.1", port, 100_000)
        return
    socketio.run(app, host="127.0.0.1", port=port, **options)


if __name__ == "__main__":
    main()
