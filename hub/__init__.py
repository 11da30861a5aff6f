"""Hub: create_app() is the composition root; only run.py and tasks/worker.py call it."""

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from flask import Flask
from flask.sessions import SessionInterface
from flask_migrate import Migrate
from flask_smorest import Api
from sqlalchemy import event

from events import EXTENSION, MemoryBackend, Publisher, RedisBackend
from events.redis_backend import connect
from hub.config import load_config
from models import db

MIGRATIONS = str(Path(__file__).resolve().parent.parent / "migrations")


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    # The hub, worker and beat write one file: WAL lets readers and a writer coexist.
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    # Under WAL, NORMAL syncs the log at checkpoints, not at every commit. A commit that
    # returned survives a crash of any process (the WAL is in the OS's page cache); only a
    # power loss or kernel crash can drop the last commits, never corrupt the file. Every
    # task transition commits (then publishes); FULL's fsync per commit, with the writer
    # lock held through it (others wait in busy_timeout), was about half of a worker
    # process's wall time per task.
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.execute("PRAGMA busy_timeout=10000")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.close()


class NoCookieSessions(SessionInterface):
    """Hub keeps no state in cookies (REST and sockets authenticate every call with a bearer
    token), yet Flask's default opens a signed-cookie session on every request: building
    its signer was ~4 % of POST /api/v1/publish. Writing to `flask.session` raises."""

    def open_session(self, app: Flask, request: Any) -> None:
        return None  # Flask substitutes its read-only null session

    def save_session(self, app: Flask, session: Any, response: Any) -> None:
        pass


def create_app(config: Mapping[str, Any] | None = None) -> Flask:
    settings = load_config(os.environ, config)
    os.makedirs(settings["INSTANCE_DIR"], exist_ok=True)
    app = Flask(__name__, instance_path=settings["INSTANCE_DIR"])
    app.config.update(settings)
    app.session_interface = NoCookieSessions()

    db.init_app(app)
    Migrate(app, db, directory=MIGRATIONS)
    if app.config["SQLALCHEMY_DATABASE_URI"].startswith("sqlite"):
        with app.app_context():
            event.listen(db.engine, "connect", _sqlite_pragmas)

    client = connect(app.config["REDIS_URL"])
    app.extensions["hub.redis"] = client
    if app.config["HUB_HISTORY_BACKEND"] == "memory":
        backend: Any = MemoryBackend(app.config["HUB_HISTORY_SIZE"], app.config["HUB_HISTORY_TTL"])
    else:
        backend = RedisBackend(client, app.config["HUB_HISTORY_SIZE"],
                               app.config["HUB_HISTORY_TTL"],
                               mq_channel=f"{app.config['HUB_REDIS_PREFIX']}:socketio",
                               prefix=app.config["HUB_REDIS_PREFIX"])
    app.extensions[EXTENSION] = Publisher(backend, app.config["HUB_MAX_MESSAGE_BYTES"])

    from hub.rate_limit import RateLimiter

    # The in-memory mode (unit tests) has no Redis to count in.
    app.extensions["hub.rate_limiter"] = RateLimiter(
        None if isinstance(backend, MemoryBackend) else client,
        app.config["HUB_REST_RATE"], app.config["HUB_REDIS_PREFIX"])

    from tasks.celery_app import celery_init_app

    celery_init_app(app)

    from hub import cli, errors

    cli.init_app(app)
    from hub.api import health, me, notifications, openapi, publish, schedules, tasks, tokens

    api = Api(app, spec_kwargs=openapi.spec_kwargs())

    for blueprint in (tasks.blp, notifications.blp, tokens.blp, publish.blp, schedules.blp,
                      me.blp):
        api.register_blueprint(blueprint)
    app.register_blueprint(health.bp)
    openapi.init_app(app, api)  # security schemes, health endpoints, the socket protocol
    errors.init_app(app)

    if app.config["HUB_PROCESS"] == "web":
        from hub import dashboard
        from hub.realtime import init_realtime

        init_realtime(app, backend)
        app.register_blueprint(dashboard.bp)

        from tasks.heartbeat import install_sweeper

        install_sweeper(app)  # task.stalled for tasks whose worker went silent
    return app
