"""Beat entries: schedule, last run, next run, last state."""

from datetime import datetime, timedelta
from typing import Any

from celery.schedules import schedule as every
from flask import current_app
from flask.views import MethodView
from sqlalchemy import select

from events.channels import schedule_channel
from hub.api.json_body import Blueprint
from hub.auth import require_scope
from models import ScheduleRun, db, utcnow
from models.base import iso
from models.schemas import ScheduleSchema

blp = Blueprint("schedules", __name__, url_prefix="/api/v1", description="Scheduled jobs")


def _as_schedule(value: Any) -> Any:
    if isinstance(value, int | float):
        return every(timedelta(seconds=value))
    if isinstance(value, timedelta):
        return every(value)
    return value


def describe_entry(entry: str, spec: dict[str, Any], now: datetime) -> dict[str, Any]:
    sched = _as_schedule(spec["schedule"])
    last = db.session.scalar(select(ScheduleRun).where(ScheduleRun.entry == entry)
                             .order_by(ScheduleRun.id.desc()).limit(1))
    every_seconds = sched.run_every.total_seconds() if isinstance(sched, every) else None
    next_run = None
    if last is not None:
        next_run = iso(now + sched.remaining_estimate(last.ran_at))
    elif every_seconds is not None:
        next_run = iso(now)
    return {
        "entry": entry, "task": spec["task"], "schedule": str(sched),
        "every_seconds": every_seconds,
        "last_run": iso(last.ran_at) if last else None,
        "last_state": last.state if last else None,
        "last_task_id": last.task_id if last else None,
        "next_run": next_run, "channel": schedule_channel(entry),
    }


@blp.route("/schedules")
class Schedules(MethodView):
    @require_scope("tasks")
    @blp.response(200, ScheduleSchema(many=True))
    def get(self) -> list[dict[str, Any]]:
        """List beat entries with their last and next runs"""
        entries = current_app.extensions["celery"].conf.beat_schedule or {}
        now = utcnow()
        return [describe_entry(name, spec, now) for name, spec in sorted(entries.items())]
