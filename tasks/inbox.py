"""Notifications: write to SQL (the truth), commit, then push on the user's channel."""

from collections.abc import Iterable
from typing import Any

from sqlalchemy import func, select, update
from sqlalchemy.exc import IntegrityError

from events import current_publisher, publish, publish_many
from events.channels import user_channel
from models import Notification, db, utcnow
from models.base import insert_detached, iso
from models.schemas import DB_INT_MAX


class NotFound(LookupError):
    """Some notification ids do not exist in this user's inbox (foreign ids look the same)."""


def unread_counts(users: Iterable[str]) -> dict[str, int]:
    wanted = list(set(users))
    counts = dict.fromkeys(wanted, 0)
    if wanted:
        rows = db.session.execute(
            select(Notification.user, func.count()).where(
                Notification.user.in_(wanted), Notification.read_at.is_(None)
            ).group_by(Notification.user))
        counts.update({user: count for user, count in rows})
    return counts


def _existing(service_id: int | None, key: str, users: list[str]) -> dict[str, Notification]:
    rows = db.session.scalars(select(Notification).where(
        Notification.service_id == service_id, Notification.idempotency_key == key,
        Notification.user.in_(users)))
    return {row.user: row for row in rows}


def notify(users: Iterable[str], title: str, *, body: str | None = None,
           data: dict[str, Any] | None = None, category: str | None = None,
           service_id: int | None = None, idempotency_key: str | None = None,
           trace_id: str | None = None) -> list[int]:
    """One row per user (a retried key adds none), committed, then pushed once each.
    Raises PublishError, storing nothing, when the push could not be published."""
    recipients = list(dict.fromkeys(users))
    _check_publishable(recipients, title, body, data, category, trace_id)
    found = _existing(service_id, idempotency_key, recipients) if idempotency_key else {}
    try:
        fresh = insert_detached(Notification, [
            {"user": user, "title": title, "body": body, "data": data, "category": category,
             "service_id": service_id, "idempotency_key": idempotency_key}
            for user in recipients if user not in found])
    except IntegrityError:
        db.session.rollback()  # a concurrent request with the same key won: take its rows
        found = _existing(service_id, idempotency_key or "", recipients)
        fresh = []
        if len(found) != len(recipients):
            raise
    rows = {**found, **{row.user: row for row in fresh}}
    push([rows[user] for user in recipients if rows[user].pushed_at is None], trace_id)
    return [rows[user].id for user in recipients]


def _check_publishable(recipients: list[str], title: str, body: str | None,
                       data: dict[str, Any] | None, category: str | None,
                       trace_id: str | None) -> None:
    """Encode the largest notification.created this call can push (the longest user id; id
    and count at their widest) before any row exists: a row that could never be pushed
    must not be stored."""
    if not recipients:
        return
    longest = max(recipients, key=len)
    record = {"id": DB_INT_MAX, "user": longest, "title": title, "body": body, "data": data,
              "category": category, "created_at": iso(utcnow()), "read_at": None,
              "read": False}
    current_publisher().check(user_channel(longest), "notification.created",
                              {"notification": record, "unread_count": DB_INT_MAX},
                              trace_id=trace_id)


def push(rows: list[Notification], trace_id: str | None = None) -> None:
    if not rows:
        return
    counts = unread_counts(row.user for row in rows)
    publish_many([(user_channel(row.user), "notification.created",
                   {"notification": row.to_record(), "unread_count": counts[row.user]})
                  for row in rows], trace_id=trace_id)
    db.session.execute(update(Notification).where(Notification.id.in_([r.id for r in rows]))
                       .values(pushed_at=utcnow()))
    db.session.commit()


def inbox(user: str, *, unread: bool = False, after_id: int | None = None,
          since_id: int | None = None, limit: int = 20) -> dict[str, Any]:
    """Newest first; next_cursor is the after_id of the next page."""
    statement = select(Notification).where(Notification.user == user)
    if unread:
        statement = statement.where(Notification.read_at.is_(None))
    if after_id is not None:
        statement = statement.where(Notification.id < after_id)
    if since_id is not None:
        statement = statement.where(Notification.id > since_id)
    rows = list(db.session.scalars(statement.order_by(Notification.id.desc()).limit(limit + 1)))
    more = len(rows) > limit
    rows = rows[:limit]
    return {"items": [row.to_record() for row in rows],
            "unread_count": unread_counts([user])[user],
            "next_cursor": rows[-1].id if more and rows else None}


def get(user: str, notification_id: int) -> dict[str, Any]:
    row = db.session.get(Notification, notification_id)
    if row is None or row.user != user:
        raise NotFound(f"no notification {notification_id}")
    return row.to_record()


def mark_read(user: str, ids: list[int] | None) -> int:
    """Mark ids (or everything, when ids is None) read; publish notification.read if any
    row changed, so the user's other tabs update. Returns the new unread count."""
    owned = Notification.user == user
    if ids is not None:
        wanted = set(ids)
        mine = set(db.session.scalars(select(Notification.id).where(
            owned, Notification.id.in_(wanted))))
        if mine != wanted:
            raise NotFound(f"no notifications {sorted(wanted - mine)}")
        scope = Notification.id.in_(wanted)
    else:
        scope = Notification.read_at.is_(None)
    changed = list(db.session.scalars(select(Notification.id).where(
        owned, scope, Notification.read_at.is_(None)).order_by(Notification.id)))
    if changed:
        db.session.execute(update(Notification).where(
            Notification.id.in_(changed), Notification.read_at.is_(None)).values(read_at=utcnow()))
    db.session.commit()
    count = unread_counts([user])[user]
    if changed:
        # Ascending ids; past 1000 the event lists the first 1000 and says it was cut.
        publish(user_channel(user), "notification.read",
                {"ids": changed[:1000], "all": ids is None, "truncated": len(changed) > 1000,
                 "unread_count": count})
    return count
