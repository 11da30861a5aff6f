"""Garbage-collector settings for long-lived processes (the web process and workers), and
the pauses the collector takes (web: /metrics)."""

import gc
import time
from dataclasses import dataclass, field
from typing import Any


@dataclass
class Pauses:
    """Collections and the time they stopped the process, per generation. A full collection
    stops the web process's event loop for every client at once, for longer the more
    connections it holds: the number an operator watches when p99 latency jumps."""

    collections: list[int] = field(default_factory=lambda: [0, 0, 0])
    seconds: list[float] = field(default_factory=lambda: [0.0, 0.0, 0.0])
    longest: list[float] = field(default_factory=lambda: [0.0, 0.0, 0.0])
    started: float = 0.0

    def observe(self, phase: str, info: dict[str, Any]) -> None:
        # A gc callback: runs inside whatever allocation triggered the collection.
        if phase == "start":
            self.started = time.perf_counter()
            return
        generation = info["generation"]
        pause = time.perf_counter() - self.started
        self.collections[generation] += 1
        self.seconds[generation] += pause
        self.longest[generation] = max(self.longest[generation], pause)


PAUSES = Pauses()


def time_collections() -> Pauses:
    """Record every collection's pause in PAUSES from now on (once per process). The web
    process does, for /metrics; workers have nowhere to report them."""
    if PAUSES.observe not in gc.callbacks:
        gc.callbacks.append(PAUSES.observe)
    return PAUSES


def settle_after_start_up() -> None:
    """Call once start-up is done, in the process that will do the work.

    A full garbage collection stops the process, so every client (or task) waits for it.
    The ~140k objects of start-up (modules, the app, SQLAlchemy, marshmallow and Celery
    metadata) live as long as the process: frozen, full collections no longer traverse
    them (web process, 1000 clients: pauses of 80-190 ms became 17-46 ms). Frozen objects
    no longer count as long-lived either, which made full collections frequent: one per
    100 collections of the middle generation instead of 10 makes them rare again (bench:
    p99 at 50/s 51 -> 28 ms after a fan-out; gevent worker: task round trip p99 -5 %, 3
    interleaved runs). The young generation keeps the default, so the cyclic garbage of
    closed sessions is still found within ~700k allocations; with (20000, 20, 100) the
    latency ladder looked the same but that garbage could wait 40M.
    """
    gc.collect()
    gc.freeze()
    gc.set_threshold(700, 10, 100)
