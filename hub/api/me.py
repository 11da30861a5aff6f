"""What a signed-in browser user may read about itself (user JWT)."""

from typing import Any

from flask.views import MethodView
from flask_smorest import Blueprint

from hub.api.tasks import task_page
from hub.auth import current_user, require_user
from models.schemas import TaskPageSchema, TaskQuerySchema

blp = Blueprint("me", __name__, url_prefix="/api/v1/me", description="The calling user")


@blp.route("/tasks")
class MyTasks(MethodView):
    @require_user
    @blp.arguments(TaskQuerySchema, location="query")
    @blp.response(200, TaskPageSchema)
    def get(self, query: dict[str, Any]) -> dict[str, Any]:
        """The caller's tasks, newest first"""
        return task_page(query, user=current_user().sub)
