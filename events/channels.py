"""Channel names and who may subscribe to them. The only module that spells a channel."""

import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from fnmatch import fnmatchcase

CHANNEL_RE = re.compile(r"^[A-Za-z0-9_:.@-]{1,255}$")

# Event types only Hub itself may publish; services publish anything else.
RESERVED_TYPE_PREFIXES = ("task.", "notification.", "schedule.", "presence.")


def is_valid_channel(name: object) -> bool:
    return isinstance(name, str) and CHANNEL_RE.fullmatch(name) is not None


def user_channel(sub: str) -> str:
    return f"user:{sub}"


def task_channel(task_id: str) -> str:
    return f"task:{task_id}"


def schedule_channel(entry: str) -> str:
    return f"schedule:{entry}"


def task_id_of(channel: str) -> str | None:
    return channel[len("task:"):] if channel.startswith("task:") else None


def room(channel: str) -> str:
    """The Socket.IO room that carries a channel (one room per channel)."""
    return channel


def is_reserved_type(event_type: str) -> bool:
    return event_type.startswith(RESERVED_TYPE_PREFIXES)


@dataclass(frozen=True)
class Decision:
    allowed: bool
    code: str = ""
    message: str = ""


ALLOW = Decision(True)

# Looks up a task's owner: None when the task does not exist, "" when it has no owner.
OwnerLookup = Callable[[str], str | None]


def may_subscribe(
    sub: str, patterns: Iterable[str], channel: str, task_owner: OwnerLookup
) -> Decision:
    """Deny by default; SPEC section 3 lists what each kind of channel admits."""
    if not is_valid_channel(channel):
        return Decision(False, "invalid", "channel names are 1-255 characters of A-Za-z0-9_:.@-")
    if channel == user_channel(sub):
        return ALLOW
    if channel.startswith("user:"):
        return Decision(False, "forbidden", "a personal channel belongs to its user only")
    task_id = task_id_of(channel)
    if task_id is not None:
        owner = task_owner(task_id)
        if owner is None:
            return Decision(False, "not_found", f"no task {task_id}")
        if owner != sub:
            return Decision(False, "forbidden", "this task belongs to another user")
        return ALLOW
    if channel.startswith(("schedule:", "public:")):
        return ALLOW
    if any(fnmatchcase(channel, pattern) for pattern in patterns):
        return ALLOW
    return Decision(False, "forbidden", "your token does not grant this channel")
