"""A backend service allowed to call the REST API with an API key."""

from datetime import datetime

from sqlalchemy import String
from sqlalchemy.orm import Mapped, mapped_column

from models.base import UTCDateTime, db, utcnow

ALL_SCOPES = ("tasks", "notify", "publish", "tokens", "admin")
DEFAULT_SCOPES = ("tasks", "notify", "publish", "tokens")


class Service(db.Model):
    __tablename__ = "services"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(100), unique=True)
    # The key is hub_<prefix>_<secret>; the prefix finds the row, the hash proves the secret.
    key_prefix: Mapped[str] = mapped_column(String(16), unique=True, index=True)
    key_hash: Mapped[str] = mapped_column(String(64))
    scopes: Mapped[str] = mapped_column(String(200))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    revoked_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), default=None)

    @property
    def scope_set(self) -> frozenset[str]:
        return frozenset(s for s in self.scopes.split(",") if s)

    @property
    def active(self) -> bool:
        return self.revoked_at is None
