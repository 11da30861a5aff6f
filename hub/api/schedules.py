"""Beat entries: schedule, last run, next run, last state."""

from datetime import UTC, datetime, timedelta
from typing import Any

import redis
from celery.schedules import crontab
from celery.schedules import schedule as every
from flask import current_app
from flask.views import MethodView
from sqlalchemy import select

from events import current_publisher
from events.channels import schedule_channel
from events.redis_backend import RedisBackend
from hub.api.json_body import Blueprint
from hub.auth import require_scope
from models import ScheduleRun, db, utcnow
from models.base import iso
from models.schemas import ScheduleSchema
from tasks.beat import due_at, due_key

blp = Blueprint("schedules", __name__, url_prefix="/api/v1", description="Scheduled jobs")
CRONTAB_FIELDS = ("minute", "hour", "day_of_week", "day_of_month", "month_of_year")


def as_schedule(value: Any) -> Any:
    """Celery accepts seconds, a timedelta or a schedule object in beat_schedule."""
    if isinstance(value, int | float):
        return every(timedelta(seconds=value))
    if isinstance(value, timedelta):
        return every(value)
    return value


def readable(sched: Any) -> dict[str, Any]:
    """The schedule as a person (and a client) reads it, never a Python repr."""
    if isinstance(sched, every):
        seconds = sched.run_every.total_seconds()
        return {"kind": "interval", "every_seconds": seconds, "crontab": None,
                "schedule": f"every {seconds:g} s"}
    if isinstance(sched, crontab):
        fields = {name: str(getattr(sched, f"_orig_{name}")) for name in CRONTAB_FIELDS}
        # The crontab(5) order: minute hour day-of-month month day-of-week.
        line = " ".join(fields[name] for name in ("minute", "hour", "day_of_month",
                                                  "month_of_year", "day_of_week"))
        return {"kind": "crontab", "every_seconds": None, "crontab": fields,
                "schedule": f"crontab {line}"}
    return {"kind": type(sched).__name__, "every_seconds": None, "crontab": None,
            "schedule": type(sched).__name__}


def beat_due_times() -> dict[str, float]:
    """Next runs as the beat holding the lock sees them; empty without a running beat."""
    backend = current_publisher().backend
    if not isinstance(backend, RedisBackend):
        return {}
    try:
        raw = current_app.extensions["hub.redis"].hgetall(
            due_key(current_app.config["HUB_REDIS_PREFIX"]))
    except redis.RedisError:
        return {}
    return {_text(name): float(value) for name, value in raw.items()}


def _text(value: str | bytes) -> str:
    return value.decode() if isinstance(value, bytes) else value


def next_run(sched: Any, last_run: datetime | None, beat_due: float | None,
             now: datetime) -> datetime | None:
    """The beat's own figure when it shares one; else from the last run, or, for an entry
    that never ran, from now (a beat starting now counts from its start)."""
    if beat_due is not None:
        return datetime.fromtimestamp(beat_due, UTC)
    try:
        return max(now, due_at(sched, last_run or now))
    except (AttributeError, TypeError, ValueError):
        return None  # a schedule type that cannot tell


def describe_entry(entry: str, spec: dict[str, Any], now: datetime,
                   beat_due: float | None = None) -> dict[str, Any]:
    sched = as_schedule(spec["schedule"])
    last = db.session.scalar(select(ScheduleRun).where(ScheduleRun.entry == entry)
                             .order_by(ScheduleRun.id.desc()).limit(1))
    return {
        "entry": entry, "task": spec["task"], **readable(sched),
        "last_run": iso(last.ran_at) if last else None,
        "last_state": last.state if last else None,
        "last_task_id": last.task_id if last else None,
        "next_run": iso(next_run(sched, last.ran_at if last else None, beat_due, now)),
        "channel": schedule_channel(entry),
    }


@blp.route("/schedules")
class Schedules(MethodView):
    @require_scope("tasks")
    @blp.response(200, ScheduleSchema(many=True))
    def get(self) -> list[dict[str, Any]]:
        """List beat entries with their last and next runs"""
        entries = current_app.extensions["celery"].conf.beat_schedule or {}
        now = utcnow()
        due = beat_due_times()
        return [describe_entry(name, spec, now, due.get(name))
                for name, spec in sorted(entries.items())]
