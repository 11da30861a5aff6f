"""Where client events enter: the allow-list and the rate limit, before any handler runs.

python-socketio hands every client event name to the namespace, reserved ones (`connect`,
`disconnect`) included, and starts a handler task for each. Hub checks the name and the
connection's rate first, in the reading task, so a forged `disconnect` never reaches the
namespace and a refused event costs a lookup and a small error ack, not a handler task.

This is the one place Hub reaches into python-socketio's private `Server._handle_event`;
`check_hooks()` runs at start-up and names the version if that hook changed shape.
"""

import inspect
from collections.abc import Callable
from importlib.metadata import version
from typing import Any

import socketio
from socketio import packet

# SPEC section 5: the only events a client may send.
CLIENT_EVENTS: frozenset[str] = frozenset({
    "subscribe", "unsubscribe", "notifications.read", "presence", "refresh", "tasks.cancel",
})

# (sid or None, event name) -> None to dispatch, the error ack to send instead, or {} to drop
# the event without an ack (a connection that is being closed).
Admit = Callable[[str | None, str], dict[str, Any] | None]

HOOK = "_handle_event"
HOOK_PARAMETERS = ["self", "eio_sid", "namespace", "id", "data"]


class IntakeHookMissing(RuntimeError):
    """The installed python-socketio no longer has the hook the intake wraps."""


def check_hooks(server: socketio.Server) -> None:
    """Fail at start-up, naming the version, if python-socketio's hook changed shape."""
    hook = getattr(type(server), HOOK, None)
    problems = []
    if hook is None or list(inspect.signature(hook).parameters) != HOOK_PARAMETERS:
        problems.append(f"Server.{HOOK}({', '.join(HOOK_PARAMETERS[1:])})")
    for name in ("_send_packet", "packet_class"):
        if not hasattr(server, name):
            problems.append(f"Server.{name}")
    if problems:
        raise IntakeHookMissing(
            f"python-socketio {version('python-socketio')} lacks {', '.join(problems)}, which "
            "Hub's client-event intake relies on; install the version pinned in pyproject.toml")


def install(server: socketio.Server, admit: Admit) -> None:
    """Route every client event of `server` through `admit` before python-socketio sees it."""
    check_hooks(server)
    dispatch = getattr(server, HOOK)

    def handle_event(eio_sid: str, namespace: str | None, id: int | None, data: Any) -> None:
        namespace = namespace or "/"
        sid = server.manager.sid_from_eio_sid(eio_sid, namespace)
        # An EVENT packet's payload is any JSON: only [name, *args] with a string name is one.
        event = data[0] if isinstance(data, list) and data and isinstance(data[0], str) else ""
        refusal = admit(sid, event)
        if refusal is None:
            dispatch(eio_sid, namespace, id, data)
        elif id is not None and refusal:
            server._send_packet(eio_sid, server.packet_class(
                packet.ACK, namespace=namespace, id=id, data=[refusal]))

    setattr(server, HOOK, handle_event)
