"""Task REST: trigger, follow, list, cancel; the catalogue of task types."""

from typing import Any

from flask import Response, g, request, url_for
from flask.views import MethodView
from sqlalchemy import select

from hub.api import lean_json
from hub.api.json_body import Blueprint, idempotency_key
from hub.auth import require_scope
from hub.errors import fail
from models import Task, db
from models.schemas import (
    TaskCreateSchema,
    TaskPageSchema,
    TaskQuerySchema,
    TaskRecordSchema,
    TaskTypeSchema,
)
from tasks import lifecycle
from tasks.registry import describe

blp = Blueprint("tasks", __name__, url_prefix="/api/v1",
                description="Trigger background tasks and follow their lifecycle")


TASK_ID_MAX = 36  # the column's width (a Celery id is a 36-character UUID)


def find_or_404(task_id: str, user: str | None = None) -> Task:
    """The task, or 404; with `user`, only that user's task (another's looks absent)."""
    # An id no task can have (too long, a NUL PostgreSQL refuses) is not worth a query.
    task = None
    if len(task_id) <= TASK_ID_MAX and "\x00" not in task_id:
        task = lifecycle.get_task(task_id)
    if task is None or (user is not None and task.user != user):
        fail(404, f"no task {task_id[:TASK_ID_MAX]}")
    return task


def cancel(task: Task) -> dict[str, Any]:
    """Cancel a found task; 409 if it already ended."""
    cancelled = lifecycle.cancel(task.id)
    if cancelled is None:
        ended = lifecycle.get_task(task.id)
        fail(409, f"task {task.id} already ended ({ended.state if ended else 'gone'})")
    return cancelled.to_record()


def task_page(query: dict[str, Any], **where: Any) -> dict[str, Any]:
    """Newest first; `cursor` is the last seen item's position (an integer)."""
    statement = select(Task).order_by(Task.seq.desc()).limit(query["limit"] + 1)
    for column in ("user", "state", "name"):
        value = where.get(column, query.get(column))
        if value is not None:
            statement = statement.where(getattr(Task, column) == value)
    if query.get("cursor") is not None:
        statement = statement.where(Task.seq < query["cursor"])
    rows = list(db.session.scalars(statement))
    more = len(rows) > query["limit"]
    rows = rows[: query["limit"]]
    return {"items": [t.to_record() for t in rows],
            "next_cursor": rows[-1].seq if more and rows else None}


TASK_CREATE = TaskCreateSchema()


@blp.route("/tasks")
class Tasks(MethodView):
    @blp.doc(**lean_json.documented(TaskCreateSchema, TaskRecordSchema, 202,
                                    {200: "Same idempotency key: the first task"},
                                    idempotent=True))
    @require_scope("tasks")
    def post(self) -> Response:
        """Trigger a task"""
        # Submissions come in bursts: their JSON goes through lean_json, not flask-smorest's
        # wrappers (the record needs no dumping through its schema: to_record is that shape).
        body = lean_json.load(TASK_CREATE)
        key = idempotency_key(body["idempotency_key"], request)
        try:
            task, created = lifecycle.submit(body["name"], body["args"], body["user"],
                                             g.service.id, key)
        except lifecycle.UnknownTask:
            fail(422, "unknown task name", errors={
                "name": [f"no task {body['name']!r}; GET /api/v1/task-types lists them"]})
        except lifecycle.ArgsInvalid as exc:
            fail(422, "invalid task arguments", errors={"args": exc.errors})
        response = lean_json.reply(task.to_record(), 202 if created else 200)
        response.headers["Location"] = url_for("tasks.TaskById", task_id=task.id)
        return response

    @require_scope("tasks")
    @blp.arguments(TaskQuerySchema(), location="query")
    @blp.response(200, TaskPageSchema)
    def get(self, query: dict[str, Any]) -> dict[str, Any]:
        """List tasks, newest first"""
        return task_page(query)


@blp.route("/tasks/<string:task_id>")
class TaskById(MethodView):
    @require_scope("tasks")
    @blp.response(200, TaskRecordSchema)
    def get(self, task_id: str) -> dict[str, Any]:
        """Get a task record"""
        return find_or_404(task_id).to_record()


@blp.route("/tasks/<string:task_id>/cancel")
class CancelTask(MethodView):
    @require_scope("tasks")
    @blp.response(202, TaskRecordSchema)
    def post(self, task_id: str) -> dict[str, Any]:
        """Cancel a task (terminates it if running)"""
        return cancel(find_or_404(task_id))


@blp.route("/task-types")
class TaskTypes(MethodView):
    @require_scope("tasks")
    @blp.response(200, TaskTypeSchema(many=True))
    def get(self) -> list[dict[str, Any]]:
        """List triggerable task types and their argument schemas"""
        return describe()
