"""A unit of background work triggered through Hub, and its lifecycle state."""

import json
from datetime import datetime
from typing import Any

from sqlalchemy import JSON, ForeignKey, Index, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from models.base import UTCDateTime, db, iso, utcnow

TASK_STATES = ("queued", "started", "retrying", "succeeded", "failed", "cancelled")
FINAL_STATES = frozenset({"succeeded", "failed", "cancelled"})
# Task records in events and subscribe snapshots leave out arguments larger than this.
EVENT_ARGS_BYTES = 4096


class Task(db.Model):
    __tablename__ = "tasks"
    __table_args__ = (
        UniqueConstraint("service_id", "idempotency_key", name="uq_tasks_service_idempotency"),
        Index("ix_tasks_user_seq", "user", "seq"),
    )

    # seq orders and paginates (an integer cursor); id is the public name and the Celery id.
    seq: Mapped[int] = mapped_column(primary_key=True, autoincrement=True)
    id: Mapped[str] = mapped_column(String(36), unique=True, index=True)
    name: Mapped[str] = mapped_column(String(200), index=True)
    state: Mapped[str] = mapped_column(String(16), default="queued", index=True)
    user: Mapped[str | None] = mapped_column(String(255), default=None)
    args: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    progress: Mapped[dict[str, Any] | None] = mapped_column(JSON, default=None)
    result: Mapped[Any | None] = mapped_column(JSON, default=None)
    error: Mapped[dict[str, Any] | None] = mapped_column(JSON, default=None)
    attempts: Mapped[int] = mapped_column(default=0)
    service_id: Mapped[int | None] = mapped_column(ForeignKey("services.id"), default=None)
    idempotency_key: Mapped[str | None] = mapped_column(String(200), default=None)
    schedule_entry: Mapped[str | None] = mapped_column(String(200), default=None)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    started_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), default=None)
    finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), default=None)

    @property
    def channel(self) -> str:
        return f"task:{self.id}"

    def to_record(self, max_args_bytes: int | None = None) -> dict[str, Any]:
        """The SPEC task record. Events and snapshots pass `max_args_bytes`: arguments larger
        than that (a broadcast's user list) are left out and `args_truncated` says so."""
        args: Any = self.args
        truncated = max_args_bytes is not None and len(json.dumps(args)) > max_args_bytes
        progress = self.progress or {"current": 0, "total": None, "percent": 0, "message": None}
        return {
            "id": self.id,
            "name": self.name,
            "state": self.state,
            "user": self.user,
            "args": None if truncated else args,
            "progress": progress,
            "result": self.result,
            "error": self.error,
            "attempts": self.attempts,
            "created_at": iso(self.created_at),
            "started_at": iso(self.started_at),
            "finished_at": iso(self.finished_at),
            "channel": self.channel,
        } | ({"args_truncated": True} if truncated else {})
