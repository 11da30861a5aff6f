"""hub-client: a typed Python client for Hub's REST API and task events."""

from hub_client.client import HubClient
from hub_client.errors import (
    BadRequest,
    Conflict,
    Forbidden,
    HubError,
    NotFound,
    PayloadTooLarge,
    RateLimited,
    TransportError,
    Unauthorized,
    Unavailable,
    ValidationFailed,
)
from hub_client.types import (
    END_STATES,
    END_TYPES,
    History,
    InboxPage,
    Notification,
    Position,
    Publication,
    Schedule,
    Task,
    TaskPage,
    TaskType,
    Token,
)
from hub_client.watch import TaskWatch

__all__ = [
    "END_STATES", "END_TYPES", "BadRequest", "Conflict", "Forbidden", "History", "HubClient",
    "HubError", "InboxPage", "NotFound", "Notification", "PayloadTooLarge", "Position",
    "Publication", "RateLimited", "Schedule", "Task", "TaskPage", "TaskType", "TaskWatch",
    "Token", "TransportError", "Unauthorized", "Unavailable", "ValidationFailed",
]
