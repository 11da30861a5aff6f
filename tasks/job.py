"""The handle a task body gets: cheap, coalesced progress reporting."""

import time
from collections.abc import Callable
from typing import Any

ProgressSink = Callable[[int, int | None, str | None], Any]


class Job:
    """What a hub_task body sees. `progress` may be called in a tight loop: the latest
    value wins and at most `hz` updates per second are stored and published."""

    def __init__(self, task_id: str, user: str | None, attempt: int, sink: ProgressSink,
                 hz: float, clock: Callable[[], float] = time.monotonic) -> None:
        self.task_id = task_id
        self.user = user
        self.attempt = attempt
        self._sink = sink
        self._interval = 1.0 / hz if hz > 0 else 0.0
        self._clock = clock
        self._last_sent = float("-inf")
        self._pending: tuple[int, int | None, str | None] | None = None

    def progress(self, current: int, total: int | None = None, message: str | None = None) -> None:
        self._pending = (int(current), None if total is None else int(total),
                         None if message is None else str(message)[:500])
        if self._clock() - self._last_sent >= self._interval:
            self.flush()

    def flush(self) -> None:
        """Send the latest unsent progress now (the wrapper calls this before finishing)."""
        if self._pending is None:
            return
        pending, self._pending = self._pending, None
        self._last_sent = self._clock()
        self._sink(*pending)
