"""SQLAlchemy models and marshmallow schemas: the source of truth. Imports nothing of ours."""

from models.base import db, utcnow
from models.notification import Notification
from models.schedule_run import ScheduleRun
from models.service import Service
from models.task import FINAL_STATES, TASK_STATES, Task

__all__ = [
    "FINAL_STATES", "TASK_STATES", "Notification", "ScheduleRun", "Service", "Task", "db",
    "utcnow",
]
