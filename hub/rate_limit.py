"""REST rate limits per API key or user: a one-second window counted in Redis, failing open.

The limit guards Hub; it must not make every request depend on Redis. Redis gets a short
timeout, and once it fails to answer the limiter stops asking it for `break_seconds` (a
circuit breaker) and counts in this process meanwhile, so requests that need only SQL keep
their usual speed through a Redis outage or stall.
"""

import logging
import time

import redis
from redis.backoff import NoBackoff
from redis.retry import Retry

from hub.errors import fail

log = logging.getLogger(__name__)

LIMIT_TIMEOUT = 0.2  # seconds: an INCR normally answers in well under a millisecond
BREAK_SECONDS = 5.0


def quick_client(client: "redis.Redis", timeout: float) -> "redis.Redis":
    """A client to the same Redis with its own pool, a short timeout and no retries."""
    pool = client.connection_pool
    options = {**pool.connection_kwargs, "socket_timeout": timeout,
               "socket_connect_timeout": timeout, "retry": Retry(NoBackoff(), 0)}
    return redis.Redis(connection_pool=redis.ConnectionPool(
        connection_class=pool.connection_class, **options))


class RateLimiter:
    def __init__(self, client: "redis.Redis | None", per_second: int, prefix: str,
                 timeout: float = LIMIT_TIMEOUT, break_seconds: float = BREAK_SECONDS) -> None:
        self.client = None if client is None else quick_client(client, timeout)
        self.per_second = per_second
        self.prefix = prefix
        self.break_seconds = break_seconds
        self.skip_until = 0.0  # monotonic: Redis is not asked before then
        self.broken = False
        self.local_second = 0
        self.local: dict[str, int] = {}  # this second's counts while Redis is skipped

    def check(self, who: str) -> None:
        client = self.client
        if client is None or self.per_second <= 0:
            return
        second = int(time.time())
        count = self._count_in_redis(client, who, second)
        if count is None:
            count = self._count_here(who, second)
        if count > self.per_second:
            fail(429, f"rate limit of {self.per_second} requests per second exceeded",
                 headers={"Retry-After": "1"})

    def _count_in_redis(self, client: "redis.Redis", who: str, second: int) -> int | None:
        """This second's count in Redis, or None while Redis is skipped or fails to answer."""
        now = time.monotonic()
        if now < self.skip_until:
            return None
        if self.broken:  # one request tries Redis again; the others keep counting here
            self.skip_until = now + self.break_seconds
        key = f"{self.prefix}:rl:{who}:{second}"
        try:
            pipe = client.pipeline(transaction=False)
            pipe.incr(key)
            pipe.expire(key, 2)
            count = int(pipe.execute()[0])
        except redis.RedisError as exc:
            self.skip_until = time.monotonic() + self.break_seconds
            if not self.broken:
                self.broken = True
                log.warning("REST rate limit counts in this process: Redis did not answer "
                            "(%s); trying it again every %.0f s", exc, self.break_seconds)
            return None
        if self.broken:
            self.broken = False
            self.skip_until = 0.0
            log.info("REST rate limit counts in Redis again")
        return count

    def _count_here(self, who: str, second: int) -> int:
        if second != self.local_second:
            self.local_second = second
            self.local = {}
        self.local[who] = self.local.get(who, 0) + 1
        return self.local[who]
