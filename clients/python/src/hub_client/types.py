"""The JSON shapes Hub's REST API and Socket.IO return, as TypedDicts (plain dicts at run time)."""

from typing import Any, Literal, NotRequired, TypedDict

TaskState = Literal["queued", "started", "retrying", "succeeded", "failed", "cancelled"]
END_STATES: frozenset[str] = frozenset({"succeeded", "failed", "cancelled"})
END_TYPES: frozenset[str] = frozenset(f"task.{state}" for state in END_STATES)


class Progress(TypedDict):
    current: int
    total: int | None
    percent: float
    message: str | None


class Task(TypedDict):
    id: str
    name: str
    state: TaskState
    user: str | None
    args: dict[str, Any]
    progress: Progress
    result: Any
    error: dict[str, Any] | None
    attempts: int
    created_at: str
    started_at: str | None
    finished_at: str | None
    channel: str


class TaskPage(TypedDict):
    items: list[Task]
    next_cursor: int | None


class TaskType(TypedDict):
    name: str
    description: str
    args_schema: dict[str, Any]


class Notification(TypedDict):
    id: int
    user: str
    title: str
    body: str | None
    data: dict[str, Any] | None
    category: str | None
    created_at: str
    read_at: str | None
    read: bool


class InboxPage(TypedDict):
    items: list[Notification]
    unread_count: int
    next_cursor: int | None


class Position(TypedDict):
    channel: str
    offset: int
    epoch: str


class Publication(TypedDict):
    """A channel publication; `snapshot` marks one the SDK made from a task snapshot."""

    channel: str
    offset: int
    epoch: str
    type: str
    data: Any
    ts: NotRequired[str]
    trace_id: NotRequired[str | None]
    snapshot: NotRequired[bool]


class History(TypedDict):
    channel: str
    offset: int
    epoch: str
    recovered: bool
    publications: list[Publication]


class Token(TypedDict):
    token: str
    expires_at: str


class Schedule(TypedDict):
    entry: str
    task: str
    kind: str  # "interval" or "crontab"
    schedule: str
    every_seconds: float | None
    crontab: dict[str, str] | None
    last_run: str | None
    last_state: str | None
    last_task_id: str | None
    next_run: str | None
    channel: str


class Health(TypedDict):
    status: str


class Readiness(TypedDict):
    status: Literal["ready", "unavailable"]
    checks: dict[str, bool]
