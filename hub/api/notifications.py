"""Notifications for services: send to one user or many, read a user's inbox."""

from typing import Any

from flask import g, request
from flask.views import MethodView

from events import PublishError
from hub.api.json_body import IDEMPOTENCY_PARAMETER, Blueprint, idempotency_key
from hub.auth import require_scope
from hub.errors import fail
from models.schemas import (
    InboxPageSchema,
    NotificationCreateSchema,
    NotificationIdsSchema,
    ServiceInboxQuerySchema,
)
from tasks import inbox

blp = Blueprint("notifications", __name__, url_prefix="/api/v1",
                description="Durable notifications: SQL first, then a live push")


@blp.route("/notifications")
class Notifications(MethodView):
    @require_scope("notify")
    @blp.arguments(NotificationCreateSchema())
    @blp.response(201, NotificationIdsSchema)
    @blp.alt_response(413, description="the notification's event would be too large")
    @blp.doc(parameters=[IDEMPOTENCY_PARAMETER])
    def post(self, body: dict[str, Any]) -> dict[str, list[int]]:
        """Notify one user or a list (up to 1000; use notifications.broadcast for more)"""
        users = body["users"] if body["users"] is not None else [body["user"]]
        key = idempotency_key(body["idempotency_key"], request)
        try:
            ids = inbox.notify(users, body["title"], body=body["body"], data=body["data"],
                               category=body["category"], service_id=g.service.id,
                               idempotency_key=key)
        except PublishError as exc:  # checked before anything is stored
            fail(413 if exc.code == "too_large" else 422, str(exc))
        return {"ids": ids}

    @require_scope("notify")
    @blp.arguments(ServiceInboxQuerySchema(), location="query")
    @blp.response(200, InboxPageSchema)
    def get(self, query: dict[str, Any]) -> dict[str, Any]:
        """A user's inbox, newest first"""
        return inbox.inbox(query["user"], unread=query["unread"], after_id=query["after_id"],
                           since_id=query["since_id"], limit=query["limit"])
