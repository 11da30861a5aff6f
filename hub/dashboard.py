"""The dashboard page, and in development the sign-in-as-anyone and demo-task helpers."""

from typing import Any

from flask import Blueprint, current_app, render_template, request
from marshmallow import ValidationError

from events import tokens
from events.namespace import iso_from_unix
from hub.auth import current_user, require_user
from hub.errors import fail
from models.schemas import USER_ID
from tasks import lifecycle

bp = Blueprint("dashboard", __name__)


def _dev_only() -> None:
    if not current_app.config["HUB_DEV_DASHBOARD"]:
        fail(404, "development helpers are off outside development")


@bp.get("/")
def index() -> str:
    entries = sorted((current_app.extensions["celery"].conf.beat_schedule or {}).keys())
    return render_template("dashboard.html", dev=current_app.config["HUB_DEV_DASHBOARD"],
                           schedule_entries=entries)


@bp.post("/dashboard/dev-token")
def dev_token() -> dict[str, Any]:
    """Development: a token for any user id, so a person can try the dashboard."""
    _dev_only()
    body = request.get_json(silent=True) or {}
    user = body.get("user")
    try:
        USER_ID(user if isinstance(user, str) else "")
    except ValidationError:
        fail(422, "invalid user", errors={"user": ["1-250 characters of A-Za-z0-9_:.@-"]})
    token, exp = tokens.issue(current_app.config["HUB_JWT_SECRET"], user, 3600)
    return {"token": token, "expires_at": iso_from_unix(exp), "user": user}


@bp.post("/dashboard/demo-task")
@require_user
def demo_task() -> tuple[dict[str, Any], int]:
    """Development: the signed-in user triggers demo.count for itself."""
    _dev_only()
    body = request.get_json(silent=True) or {}
    args = {"steps": body.get("steps", 20), "delay": body.get("delay", 0.15)}
    try:
        task, _ = lifecycle.submit("demo.count", args, current_user().sub, None, None)
    except lifecycle.ArgsInvalid as exc:
        fail(422, "invalid task arguments", errors={"args": exc.errors})
    return task.to_record(), 202
