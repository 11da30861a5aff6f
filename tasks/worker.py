"""The Celery entry (`celery -A tasks worker|beat`): one app per worker or beat process."""

from typing import Any

from celery.signals import worker_init, worker_process_init, worker_ready, worker_shutdown

from hub import create_app
from hub.heap import settle_after_start_up
from tasks import visibility
from tasks.heartbeat import Heartbeat

app = create_app({"HUB_PROCESS": "worker"})
celery = app.extensions["celery"]


# Connected here, once per process, not in every create_app: in the process that runs
# tasks, each prefork child or the worker itself (threads, gevent), after start-up.
@worker_process_init.connect
@worker_ready.connect
def _settle(**_: object) -> None:
    settle_after_start_up()


@worker_init.connect
def _check_broker_layout(**_: object) -> None:
    """A worker on a kombu whose unacked layout changed would let live tasks be restored and
    run twice: refuse to start (SystemExit passes through Celery's signal dispatch)."""
    try:
        visibility.check_layout()
    except visibility.LayoutChanged as exc:
        raise SystemExit(str(exc)) from exc


_heartbeat: list[Heartbeat] = []


@worker_ready.connect
def _start_heartbeat(**_: object) -> None:
    """In the worker's main process, which holds the messages and knows what runs."""
    heartbeat = Heartbeat(app, celery)
    heartbeat.start()
    _heartbeat.append(heartbeat)


@worker_shutdown.connect
def _stop_heartbeat(**_: Any) -> None:
    for heartbeat in _heartbeat:
        heartbeat.stop()
