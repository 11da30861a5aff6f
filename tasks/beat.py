"""Beat's scheduler: state in memory (no shelve file) and guarded by a Redis lock."""

import logging
import uuid
from collections.abc import Mapping
from datetime import datetime
from typing import Any

import redis
from celery.beat import ScheduleEntry, Scheduler
from celery.schedules import crontab
from celery.schedules import schedule as every
from celery.utils.time import ffwd

from events.redis_backend import connect

log = logging.getLogger(__name__)

# Extend the lock only if we still hold it.
EXTEND = """
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('PEXPIRE', KEYS[1], ARGV[2])
end
return 0
"""
RELEASE = """
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
"""


def due_key(prefix: str) -> str:
    """The hash where the beat holding the lock writes each entry's next run (epoch seconds)."""
    return f"{prefix}:beat:due"


def due_at(sched: Any, last_run_at: datetime) -> datetime:
    """When a schedule next fires after `last_run_at`, as an instant (no clock drift between
    two now() calls): an interval adds its period, a crontab steps to its next match."""
    if isinstance(sched, every):
        return last_run_at + sched.run_every
    if isinstance(sched, crontab):
        start, delta, _now = sched.remaining_delta(last_run_at, ffwd=ffwd)
        return start + delta
    return sched.now() + sched.remaining_estimate(last_run_at)


def due_times(entries: Mapping[str, ScheduleEntry], now: datetime) -> dict[str, float]:
    """When each entry next runs, as this scheduler sees it: an entry that never ran counts
    from the scheduler's start (Celery's default last_run_at), which only the beat knows."""
    return {name: max(now, due_at(entry.schedule, entry.last_run_at)).timestamp()
            for name, entry in entries.items()}


class LockedScheduler(Scheduler):
    """Exactly one beat ticks: the one holding `<prefix>:beat:lock` (renewed every tick)."""

    lock_ttl_ms = 30_000

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        self._token = uuid.uuid4().hex
        self._holding = False
        self._redis: redis.Redis | None = None
        super().__init__(*args, **kwargs)

    def _client(self) -> "redis.Redis":
        if self._redis is None:
            self._redis = connect(self.app.conf.hub_redis_url)
        return self._redis

    @property
    def lock_key(self) -> str:
        return f"{self.app.conf.hub_redis_prefix}:beat:lock"

    def _hold_lock(self) -> bool:
        try:
            client = self._client()
            if client.set(self.lock_key, self._token, nx=True, px=self.lock_ttl_ms):
                holding = True
            else:
                holding = bool(client.eval(EXTEND, 1, self.lock_key, self._token,
                                           self.lock_ttl_ms))
        except redis.RedisError as exc:
            log.warning("beat lock unavailable: %s", exc)
            holding = False
        if holding != self._holding:
            log.info("beat lock %s", "acquired" if holding else "not held; standing by")
            self._holding = holding
        return holding

    def tick(self, *args: Any, **kwargs: Any) -> float:
        if not self._hold_lock():
            return 5.0
        wait = min(super().tick(*args, **kwargs), self.lock_ttl_ms / 3000)
        self._share_due_times()
        return wait

    def _share_due_times(self) -> None:
        """GET /schedules reads these: the web process cannot know when beat started."""
        due = due_times(self.schedule, self.app.now())
        if not due:
            return
        key = due_key(self.app.conf.hub_redis_prefix)
        try:
            pipe = self._client().pipeline(transaction=True)
            pipe.delete(key)
            pipe.hset(key, mapping=due)
            pipe.pexpire(key, self.lock_ttl_ms)  # gone soon after this beat stops
            pipe.execute()
        except redis.RedisError as exc:
            log.warning("beat cannot share its schedule: %s", exc)

    def close(self) -> None:
        if self._holding and self._redis is not None:
            try:
                self._redis.eval(RELEASE, 1, self.lock_key, self._token)
            except redis.RedisError:
                pass
        super().close()
