"""The Celery entry (`celery -A tasks worker|beat`): one app per worker or beat process."""

from celery.signals import worker_process_init, worker_ready

from hub import create_app
from hub.heap import settle_after_start_up

celery = create_app({"HUB_PROCESS": "worker"}).extensions["celery"]


# Connected here, once per process, not in every create_app: in the process that runs
# tasks, each prefork child or the worker itself (threads, gevent), after start-up.
@worker_process_init.connect
@worker_ready.connect
def _settle(**_: object) -> None:
    settle_after_start_up()
