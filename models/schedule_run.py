"""One run of a beat entry: what GET /schedules reports as last run and state."""

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, Index, String
from sqlalchemy.orm import Mapped, mapped_column

from models.base import UTCDateTime, db, utcnow


class ScheduleRun(db.Model):
    __tablename__ = "schedule_runs"
    __table_args__ = (Index("ix_schedule_runs_entry_id", "entry", "id"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    entry: Mapped[str] = mapped_column(String(200))
    task_id: Mapped[str] = mapped_column(String(36))
    state: Mapped[str] = mapped_column(String(16))
    result: Mapped[Any | None] = mapped_column(JSON, default=None)
    ran_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
