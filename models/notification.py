"""A notification in a user's inbox: durable in SQL whatever happens to Redis."""

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, ForeignKey, Index, String, Text, UniqueConstraint, text
from sqlalchemy.orm import Mapped, mapped_column

from models.base import UTCDateTime, db, iso, utcnow


class Notification(db.Model):
    __tablename__ = "notifications"
    __table_args__ = (
        # One row per (service, key, user): a retried request or a redelivered batch adds nothing.
        UniqueConstraint("service_id", "idempotency_key", "user",
                         name="uq_notifications_service_key_user"),
        # That constraint sees NULL service_ids as distinct, so the rows Hub makes itself (a
        # task's end, broadcast batches) are kept unique per key and user by this index.
        Index("uq_notifications_hub_key_user", "idempotency_key", "user", unique=True,
              sqlite_where=text("service_id IS NULL"),
              postgresql_where=text("service_id IS NULL")),
        Index("ix_notifications_user_id", "user", "id"),
        Index("ix_notifications_user_unread", "user", "read_at"),
    )

    # The integer id is also the inbox cursor (newest first).
    id: Mapped[int] = mapped_column(primary_key=True, autoincrement=True)
    user: Mapped[str] = mapped_column(String(255))
    title: Mapped[str] = mapped_column(String(200))
    body: Mapped[str | None] = mapped_column(Text, default=None)
    data: Mapped[dict[str, Any] | None] = mapped_column(JSON, default=None)
    category: Mapped[str | None] = mapped_column(String(100), default=None)
    service_id: Mapped[int | None] = mapped_column(ForeignKey("services.id"), default=None)
    idempotency_key: Mapped[str | None] = mapped_column(String(200), default=None)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow, index=True)
    read_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), default=None)
    # Set once notification.created went out; a redelivered batch re-sends only unpushed rows.
    pushed_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), default=None)

    def to_record(self) -> dict[str, Any]:
        return {
            "id": self.id, "user": self.user, "title": self.title, "body": self.body,
            "data": self.data, "category": self.category, "created_at": iso(self.created_at),
            "read_at": iso(self.read_at), "read": self.read_at is not None,
        }
