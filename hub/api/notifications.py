"""Notifications for services: send to one user or many, read a user's inbox."""

from typing import Any

from flask import g
from flask.views import MethodView
from flask_smorest import Blueprint

from hub.auth import require_scope
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
    def post(self, body: dict[str, Any]) -> dict[str, list[int]]:
        """Notify one user or a list (up to 1000; use notifications.broadcast for more)"""
        users = body["users"] if body["users"] is not None else [body["user"]]
        ids = inbox.notify(users, body["title"], body=body["body"], data=body["data"],
                           category=body["category"], service_id=g.service.id,
                           idempotency_key=body["idempotency_key"])
        return {"ids": ids}

    @require_scope("notify")
    @blp.arguments(ServiceInboxQuerySchema(), location="query")
    @blp.response(200, InboxPageSchema)
    def get(self, query: dict[str, Any]) -> dict[str, Any]:
        """A user's inbox, newest first"""
        return inbox.inbox(query["user"], unread=query["unread"], after_id=query["after_id"],
                           since_id=query["since_id"], limit=query["limit"])
