"""Garbage-collector settings for long-lived processes (the web process and workers)."""

import gc


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
