"""REST rate limits per API key or user: a one-second window counted in Redis."""

import time

import redis

from hub.errors import fail


class RateLimiter:
    def __init__(self, client: "redis.Redis | None", per_second: int, prefix: str) -> None:
        self.client = client
        self.per_second = per_second
        self.prefix = prefix

    def check(self, who: str) -> None:
        if self.client is None or self.per_second <= 0:
            return
        key = f"{self.prefix}:rl:{who}:{int(time.time())}"
        pipe = self.client.pipeline(transaction=False)
        pipe.incr(key)
        pipe.expire(key, 2)
        count = pipe.execute()[0]
        if count > self.per_second:
            fail(429, f"rate limit of {self.per_second} requests per second exceeded",
                 headers={"Retry-After": "1"})
