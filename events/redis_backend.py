"""Channel history in Redis, published atomically with the Socket.IO message queue.

One Lua script assigns the offset, stores the publication and PUBLISHes it in
python-socketio's message-queue format. Doing all three in one step keeps
offsets in delivery order across every publishing process, and a Redis error
surfaces to the caller instead of being dropped the way the stock emitter does
while Redis is down. The message's bytes (envelope, queue head and close) come
from events.wire; the script only splices them, inside Redis.
"""

import json
import os
from typing import Any

import redis
from redis.backoff import ExponentialBackoff
from redis.exceptions import NoScriptError
from redis.retry import Retry

from events.backend import Entry, HistoryBackend, Position, Recovery, new_epoch
from events.wire import lua_envelope, lua_queue_message, queue_head

# ARGV: epoch for a new channel, envelope tail, history size, ttl, queue channel ('': none),
# queue head (events.wire.queue_head).
APPEND = f"""
if redis.call('HSETNX', KEYS[1], 'epoch', ARGV[1]) == 1 then
  redis.call('DEL', KEYS[2])
end
local epoch = redis.call('HGET', KEYS[1], 'epoch')
local offset = redis.call('HINCRBY', KEYS[1], 'offset', 1)
local env = {lua_envelope("offset", "epoch", "ARGV[2]")}
redis.call('RPUSH', KEYS[2], env)
redis.call('LTRIM', KEYS[2], -tonumber(ARGV[3]), -1)
redis.call('EXPIRE', KEYS[1], ARGV[4])
redis.call('EXPIRE', KEYS[2], ARGV[4])
if ARGV[5] ~= '' then
  redis.call('PUBLISH', ARGV[5], {lua_queue_message("ARGV[6]", "env")})
end
return {{offset, epoch}}
"""

# APPEND, refused while the channel has a publication (its offset is past 0): atomic in
# Redis, so an announcement that lost the race to a later event is dropped, never reordered.
APPEND_FIRST = """
if tonumber(redis.call('HGET', KEYS[1], 'offset') or '0') > 0 then
  return false
end
""" + APPEND

RECOVER = """
if redis.call('HSETNX', KEYS[1], 'epoch', ARGV[1]) == 1 then
  redis.call('HSET', KEYS[1], 'offset', 0)
  redis.call('DEL', KEYS[2])
  redis.call('EXPIRE', KEYS[1], ARGV[2])
end
local epoch = redis.call('HGET', KEYS[1], 'epoch')
local offset = tonumber(redis.call('HGET', KEYS[1], 'offset') or '0')
if ARGV[3] == '' then return {offset, epoch, 0, {}} end
local since = tonumber(ARGV[3])
if ARGV[4] ~= epoch or since > offset then return {offset, epoch, 0, {}} end
if since == offset then return {offset, epoch, 1, {}} end
local first = offset - redis.call('LLEN', KEYS[2]) + 1
if since + 1 < first then return {offset, epoch, 0, {}} end
local start = since + 1 - first
local stop = -1
local limit = tonumber(ARGV[5])
if limit > 0 and offset - since > limit then stop = start + limit - 1 end
return {offset, epoch, 1, redis.call('LRANGE', KEYS[2], start, stop)}
"""


PIPELINE_SLICE = 256  # publications per pipeline in append_many


DEFAULT_TIMEOUT = 1.0  # seconds; HUB_REDIS_TIMEOUT


def redis_timeout() -> float:
    """How long any one Redis call may wait for an answer (HUB_REDIS_TIMEOUT, seconds)."""
    return float(os.environ.get("HUB_REDIS_TIMEOUT") or DEFAULT_TIMEOUT)


def no_timeout_retry(retries: int) -> Retry:
    """Quick retries after a broken connection (a Redis restart leaves stale pooled ones), but
    none after a timeout: a stalled Redis would make every retry wait the full timeout again,
    and the timed-out command may still run once Redis wakes up (a retried append would
    publish twice)."""
    return Retry(ExponentialBackoff(cap=0.2, base=0.05), retries,
                 supported_errors=(redis.ConnectionError,))


def redis_options(timeout: float | None = None, retries: int = 2) -> dict[str, object]:
    """Short timeouts and two quick retries on a broken connection: a Redis outage or stall
    surfaces within about `timeout` (REST answers 503, readiness goes red) instead of hiding
    behind redis-py's long backoff.
    RESP2, not redis-py 8's default RESP3: its pure-Python parser costs less per reply and
    per queue message (`POST /api/v1/publish` CPU -5 to -8 %, 3 A/B pairs in-process)."""
    timeout = redis_timeout() if timeout is None else timeout
    return {"socket_timeout": timeout, "socket_connect_timeout": timeout,
            "retry": no_timeout_retry(retries), "health_check_interval": 30, "protocol": 2}


def connect(url: str, timeout: float | None = None, retries: int = 2) -> "redis.Redis":
    return redis.Redis.from_url(url, **redis_options(timeout, retries))


class RedisBackend(HistoryBackend):
    def __init__(
        self, client: "redis.Redis", size: int, ttl: int, mq_channel: str, prefix: str = "hub"
    ) -> None:
        super().__init__(size, ttl)
        self.client = client
        self.mq_channel = mq_channel
        self.prefix = prefix
        self.host_id = f"{prefix}-publisher"
        self._append = client.register_script(APPEND)
        self._recover = client.register_script(RECOVER)
        self._append_first = client.register_script(APPEND_FIRST)

    def _keys(self, channel: str) -> list[str]:
        return [f"{self.prefix}:ch:{channel}:meta", f"{self.prefix}:ch:{channel}:log"]

    def _argv(self, room: str, event_type: str, tail: str) -> list[Any]:
        return [new_epoch(), tail, self.size, self.ttl, self.mq_channel,
                queue_head(event_type, room, self.host_id)]

    def append(self, channel: str, room: str, event_type: str, tail: str) -> Position:
        offset, epoch = self._append(keys=self._keys(channel),
                                     args=self._argv(room, event_type, tail))
        return Position(int(offset), _text(epoch))

    def append_first(self, channel: str, room: str, event_type: str, tail: str) -> Position | None:
        reply = self._append_first(keys=self._keys(channel),
                                   args=self._argv(room, event_type, tail))
        return None if reply is None else Position(int(reply[0]), _text(reply[1]))

    def append_many(self, entries: list[Entry]) -> list[Position]:
        """One round trip for all: a pipeline of the same script, in order. A task's end
        goes to two channels and a notification batch to hundreds; the publications' round
        trips were about a third of a task's lifecycle in the worker (cProfile)."""
        if len(entries) < 2:
            return [self.append(*entry) for entry in entries]
        replies = self._pipelined(entries)
        if all(isinstance(reply, NoScriptError) for reply in replies):
            # Redis restarted or was flushed: its script cache is empty, so nothing ran.
            self.client.script_load(APPEND)
            replies = self._pipelined(entries)
        for reply in replies:
            if isinstance(reply, Exception):
                raise reply
        return [Position(int(offset), _text(epoch)) for offset, epoch in replies]

    def _pipelined(self, entries: list[Entry]) -> list[Any]:
        replies: list[Any] = []
        # In slices, so a large notification batch neither builds one huge request nor
        # holds Redis for long.
        for start in range(0, len(entries), PIPELINE_SLICE):
            pipe = self.client.pipeline(transaction=False)
            for channel, room, event_type, tail in entries[start:start + PIPELINE_SLICE]:
                pipe.evalsha(self._append.sha, 2, *self._keys(channel),
                             *self._argv(room, event_type, tail))
            replies += pipe.execute(raise_on_error=False)
        return replies

    def recover(self, channel: str, since: Position | None, limit: int = 0) -> Recovery:
        args = [new_epoch(), self.ttl, "", "", limit]
        if since is not None:
            args[2:4] = [since.offset, since.epoch]
        offset, epoch, recovered, items = self._recover(keys=self._keys(channel), args=args)
        position = Position(int(offset), _text(epoch))
        return Recovery(position, bool(recovered), [json.loads(item) for item in items])

    def ping(self) -> bool:
        return bool(self.client.ping())


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value
