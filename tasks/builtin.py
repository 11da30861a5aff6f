"""Built-in tasks: demo.count, notifications.broadcast, notifications.digest, hub.cleanup."""

import time
from datetime import timedelta
from typing import Any

from marshmallow import Schema, fields, validate
from sqlalchemy import delete, func, or_, select

from models import FINAL_STATES, Notification, ScheduleRun, Task, db, utcnow
from models.schemas import USER_ID, NotificationContentSchema
from tasks import inbox
from tasks.hub_task import hub_task
from tasks.job import Job


class CountArgs(Schema):
    steps = fields.Integer(load_default=10, validate=validate.Range(min=1, max=100_000),
                           metadata={"description": "how many steps to count"})
    delay = fields.Float(load_default=0.2, validate=validate.Range(min=0, max=60),
                         metadata={"description": "seconds to sleep per step"})
    fail_at = fields.Integer(load_default=None, allow_none=True,
                             validate=validate.Range(min=1),
                             metadata={"description": "raise an error at this step"})


@hub_task(name="demo.count", args=CountArgs, notify_on_finish=True,
          description="Count to `steps`, sleeping `delay` seconds a step (fails at `fail_at`).")
def count(job: Job, steps: int, delay: float, fail_at: int | None = None) -> dict[str, int]:
    for step in range(1, steps + 1):
        if delay:
            time.sleep(delay)
        if fail_at == step:
            raise RuntimeError(f"failed at step {step}, as asked")
        job.progress(step, steps, f"step {step} of {steps}")
    return {"counted": steps}


class BroadcastArgs(NotificationContentSchema):
    users = fields.List(fields.String(validate=USER_ID), required=True,
                        validate=validate.Length(min=1, max=100_000))
    batch_size = fields.Integer(load_default=500, validate=validate.Range(min=1, max=5000))


@hub_task(name="notifications.broadcast", args=BroadcastArgs, max_attempts=5,
          description="Fan one notification out to a list of users, in batches, with progress.")
def broadcast(job: Job, users: list[str], title: str, body: str | None = None,
              data: dict[str, Any] | None = None, category: str | None = None,
              batch_size: int = 500) -> dict[str, int]:
    recipients = list(dict.fromkeys(users))
    batches = [recipients[i:i + batch_size] for i in range(0, len(recipients), batch_size)]
    for index, batch in enumerate(batches):
        # The key makes each batch idempotent: a redelivered task re-creates no row and
        # re-sends only what was never pushed.
        inbox.notify(batch, title, body=body, data=data, category=category,
                     idempotency_key=f"broadcast:{job.task_id}:{index}")
        job.progress(min((index + 1) * batch_size, len(recipients)), len(recipients),
                     f"batch {index + 1} of {len(batches)}")
    return {"recipients": len(recipients), "batches": len(batches)}


class DigestArgs(Schema):
    older_than_hours = fields.Float(load_default=24.0, validate=validate.Range(min=0))


@hub_task(name="notifications.digest", args=DigestArgs,
          description="One summary notification per user with unread items older than N hours.")
def digest(job: Job, older_than_hours: float = 24.0) -> dict[str, int]:
    cutoff = utcnow() - timedelta(hours=older_than_hours)
    not_digest = or_(Notification.category.is_(None), Notification.category != "digest")
    pending = db.session.execute(
        select(Notification.user, func.count(), func.max(Notification.id))
        .where(Notification.read_at.is_(None), Notification.created_at <= cutoff, not_digest)
        .group_by(Notification.user)).all()
    made = 0
    for done, (user, count, newest) in enumerate(pending, 1):
        # Summarise each unread item once: a later digest only if newer items piled up.
        key = f"digest:{user}:{newest}"
        if db.session.scalar(select(Notification.id).where(
                Notification.user == user, Notification.idempotency_key == key)) is None:
            noun = "notification" if count == 1 else "notifications"
            inbox.notify([user], f"You have {count} unread {noun}", category="digest",
                         data={"count": count, "up_to_id": newest}, idempotency_key=key)
            made += 1
        job.progress(done, len(pending))
    return {"users": len(pending), "digests": made}


class CleanupArgs(Schema):
    notification_days = fields.Integer(load_default=90, validate=validate.Range(min=1))
    task_days = fields.Integer(load_default=30, validate=validate.Range(min=1))
    schedule_run_days = fields.Integer(load_default=7, validate=validate.Range(min=1))


@hub_task(name="hub.cleanup", args=CleanupArgs,
          description="Expire read notifications, finished tasks and schedule runs past retention.")
def cleanup(job: Job, notification_days: int = 90, task_days: int = 30,
            schedule_run_days: int = 7) -> dict[str, int]:
    now = utcnow()
    removed = {
        "notifications": db.session.execute(delete(Notification).where(
            Notification.read_at.is_not(None),
            Notification.created_at < now - timedelta(days=notification_days))).rowcount,
        "tasks": db.session.execute(delete(Task).where(
            Task.state.in_(list(FINAL_STATES)),
            Task.finished_at < now - timedelta(days=task_days))).rowcount,
        "schedule_runs": db.session.execute(delete(ScheduleRun).where(
            ScheduleRun.ran_at < now - timedelta(days=schedule_run_days))).rowcount,
    }
    db.session.commit()
    job.progress(1, 1, "done")
    return removed
