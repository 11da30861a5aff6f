"""@hub_task: declare a Celery task that Hub can trigger, persist and report."""

import json
import logging
from collections.abc import Callable
from typing import Any

from billiard.exceptions import SoftTimeLimitExceeded
from celery import shared_task
from flask import current_app
from marshmallow import Schema, ValidationError

from tasks import heartbeat, lifecycle
from tasks.job import Job
from tasks.registry import TaskType, register

log = logging.getLogger(__name__)


def _error(exc: BaseException) -> dict[str, Any]:
    return {"type": type(exc).__name__, "message": str(exc)[:2000]}


def hub_task(
    name: str, *, args: type[Schema] | None = None, description: str = "",
    notify_on_finish: bool = False, max_attempts: int = 3,
    retry_on: tuple[type[BaseException], ...] = (), retry_delay: float = 1.0,
    soft_time_limit: int | None = None, time_limit: int | None = None,
) -> Callable[[Callable[..., Any]], Any]:
    """Register `body(job, **args)` with Celery and with GET /task-types.

    The wrapper validates arguments, moves the task record through its states
    (committing before each event), coalesces progress and bounds redelivery by
    `max_attempts`. The body never emits anything itself.
    """

    def decorator(body: Callable[..., Any]) -> Any:
        task_type = TaskType(
            name=name, body=body, args=args, description=description or (body.__doc__ or ""),
            notify_on_finish=notify_on_finish, max_attempts=max_attempts, retry_on=retry_on,
            retry_delay=retry_delay,
        )

        @shared_task(name=name, bind=True, acks_late=True, reject_on_worker_lost=True,
                     soft_time_limit=soft_time_limit, time_limit=time_limit)
        def run(self: Any, task_id: str | None = None, schedule: str | None = None,
                **raw_args: Any) -> None:
            execute(self, task_type, task_id, schedule, raw_args)

        task_type.celery_task = run
        register(task_type)
        return run

    return decorator


def execute(celery_task: Any, task_type: TaskType, task_id: str | None,
            schedule: str | None, raw_args: dict[str, Any]) -> None:
    if task_id is None:  # started by beat: validate and record it now
        try:
            args = task_type.validate(raw_args)
        except ValidationError as exc:
            log.error("beat entry %s for %s has bad args: %s", schedule, task_type.name, exc)
            return
        task_id = lifecycle.record_scheduled(celery_task.request.id, task_type.name, args,
                                             schedule).id
    task = lifecycle.start(task_id, task_type.max_attempts)
    if task is None:
        return  # already finished or cancelled: a redelivery has nothing to do
    heartbeat.attempt_started(task_id)
    try:
        _run(celery_task, task_type, task)
    finally:
        heartbeat.attempt_ended(task_id)


def _run(celery_task: Any, task_type: TaskType, task: Any) -> None:
    task_id = task.id
    if task.attempts > task_type.max_attempts:
        lifecycle.finish(task_id, "failed", error={
            "type": "TooManyAttempts",
            "message": f"gave up after {task_type.max_attempts} attempts"})
        return
    hz = current_app.config["HUB_PROGRESS_HZ"]
    job = Job(task.id, task.user, task.attempts,
              lambda cur, tot, msg: lifecycle.progress(task_id, cur, tot, msg), hz)
    try:
        result = task_type.body(job, **task.args)
        json.dumps(result)
    except SoftTimeLimitExceeded:
        job.flush()
        lifecycle.finish(task_id, "failed",
                         error={"type": "TimeLimitExceeded", "message": "the task ran too long"})
        return
    except Exception as exc:
        job.flush()
        if isinstance(exc, task_type.retry_on) and task.attempts < task_type.max_attempts:
            delay = task_type.retry_delay * (2 ** (task.attempts - 1))
            lifecycle.retrying(task_id, _error(exc), delay)
            raise celery_task.retry(exc=exc, countdown=delay, max_retries=None,
                                    kwargs={"task_id": task_id}) from exc
        log.info("task %s (%s) failed: %s", task_id, task_type.name, exc)
        lifecycle.finish(task_id, "failed", error=_error(exc))
        return
    job.flush()
    lifecycle.finish(task_id, "succeeded", result=result)
