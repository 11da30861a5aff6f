"""Celery app, hub_task, built-in tasks and the worker entry (`celery -A tasks worker`)."""

from typing import Any

from tasks.hub_task import hub_task
from tasks.job import Job

__all__ = ["Job", "hub_task"]


def __getattr__(name: str) -> Any:
    # `celery -A tasks` looks for tasks.celery; build the worker app only when asked.
    if name == "celery":
        from tasks.worker import celery

        return celery
    raise AttributeError(name)
