"""What a signed-in browser user may read and change about itself (user JWT)."""

from typing import Any

from flask.views import MethodView

from hub.api.json_body import Blueprint, use_row_ids
from hub.api.tasks import cancel, find_or_404, task_page
from hub.auth import current_user, require_user
from hub.errors import fail
from models.schemas import (
    InboxPageSchema,
    InboxQuerySchema,
    MarkReadSchema,
    NotificationRecordSchema,
    TaskPageSchema,
    TaskQuerySchema,
    TaskRecordSchema,
    UnreadCountSchema,
)
from tasks import inbox

blp = Blueprint("me", __name__, url_prefix="/api/v1/me", description="The calling user")
use_row_ids(blp)


@blp.route("/tasks")
class MyTasks(MethodView):
    @require_user
    @blp.arguments(TaskQuerySchema(), location="query")
    @blp.response(200, TaskPageSchema)
    def get(self, query: dict[str, Any]) -> dict[str, Any]:
        """The caller's tasks, newest first"""
        return task_page(query, user=current_user().sub)


@blp.route("/tasks/<string:task_id>/cancel")
class CancelMyTask(MethodView):
    @require_user
    @blp.response(202, TaskRecordSchema)
    @blp.alt_response(404, description="no such task of the caller's")
    @blp.alt_response(409, description="the task already ended")
    def post(self, task_id: str) -> dict[str, Any]:
        """Cancel one of the caller's tasks (terminates it if running)"""
        # Another user's task answers 404, as if absent: ids are not a way to probe.
        return cancel(find_or_404(task_id, user=current_user().sub))


@blp.route("/notifications")
class MyNotifications(MethodView):
    @require_user
    @blp.arguments(InboxQuerySchema(), location="query")
    @blp.response(200, InboxPageSchema)
    def get(self, query: dict[str, Any]) -> dict[str, Any]:
        """The caller's inbox, newest first"""
        return inbox.inbox(current_user().sub, unread=query["unread"],
                           after_id=query["after_id"], since_id=query["since_id"],
                           limit=query["limit"])


@blp.route("/notifications/<rowid:notification_id>")
class MyNotification(MethodView):
    @require_user
    @blp.response(200, NotificationRecordSchema)
    def get(self, notification_id: int) -> dict[str, Any]:
        """One of the caller's notifications"""
        try:
            return inbox.get(current_user().sub, notification_id)
        except inbox.NotFound as exc:
            fail(404, str(exc))


@blp.route("/notifications/read")
class MarkRead(MethodView):
    @require_user
    @blp.arguments(MarkReadSchema())
    @blp.response(200, UnreadCountSchema)
    def post(self, body: dict[str, Any]) -> dict[str, int]:
        """Mark notifications read (by ids, or all)"""
        try:
            count = inbox.mark_read(current_user().sub, None if body["all"] else body["ids"])
        except inbox.NotFound as exc:
            fail(404, str(exc))
        return {"unread_count": count}
