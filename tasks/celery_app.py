"""The Celery app, bound to the Flask app: every task runs inside an app context."""

from typing import Any

from celery import Celery, Task
from celery.signals import worker_process_init
from flask import Flask

from events.redis_backend import redis_timeout
from models import db
from tasks.visibility import transport_options


def bounded_waits() -> dict[str, float]:
    """kombu waits forever on a stalled Redis by default: a submission would hang with it.
    A failed enqueue makes up to three calls (the push, kombu's ping on reconnecting,
    celeryconfig's one retry), so each gets half of HUB_REDIS_TIMEOUT: REST answers 503
    within about 1.5 times it. A worker's BRPOP is read only once its socket is readable,
    so its long poll is unaffected."""
    timeout = redis_timeout() / 2
    return {"socket_timeout": timeout, "socket_connect_timeout": timeout}


def celery_init_app(app: Flask) -> Celery:
    class FlaskTask(Task):
        def __call__(self, *args: Any, **kwargs: Any) -> Any:
            with app.app_context():
                return self.run(*args, **kwargs)

    celery_app = Celery(app.name, task_cls=FlaskTask)
    celery_app.config_from_object("celeryconfig")
    celery_app.conf.update(
        broker_url=app.config["HUB_BROKER_URL"],
        result_backend=app.config["REDIS_URL"],
        broker_transport_options={**transport_options(app.config["HUB_STALL_SECONDS"],
                                                      app.config["HUB_VISIBILITY_TIMEOUT"]),
                                  **bounded_waits()},
        # The result backend too (its default read timeout is 120 s), though results stay in SQL.
        redis_socket_timeout=redis_timeout(),
        redis_socket_connect_timeout=redis_timeout(),
        hub_redis_url=app.config["REDIS_URL"],
        hub_redis_prefix=app.config["HUB_REDIS_PREFIX"],
    )
    celery_app.set_default()
    app.extensions["celery"] = celery_app

    def fresh_connections(**_: Any) -> None:
        # Prefork children must not share the parent's database connections.
        with app.app_context():
            db.engine.dispose(close=False)

    worker_process_init.connect(fresh_connections, weak=False)

    import tasks.builtin  # noqa: F401  (registers the built-in hub tasks)

    return celery_app
