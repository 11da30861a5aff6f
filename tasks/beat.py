"""Beat's scheduler: state in memory (no shelve file) and guarded by a Redis lock."""

import logging
import uuid
from typing import Any

import redis
from celery.beat import Scheduler

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
        return min(super().tick(*args, **kwargs), self.lock_ttl_ms / 3000)

    def close(self) -> None:
        if self._holding and self._redis is not None:
            try:
                self._redis.eval(RELEASE, 1, self.lock_key, self._token)
            except redis.RedisError:
                pass
        super().close()
