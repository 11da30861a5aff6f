"""A dead worker's tasks come back within a minute; a live worker's never do.

kombu's Redis transport emulates acks: each message a worker takes is scored by the time it
was taken in a sorted set (`unacked_index`, behind any `global_keyprefix`), keyed by its
delivery tag, and every worker's periodic `restore_visible` sweep puts back on the queue each
message scored older than `visibility_timeout`. Celery's usual advice is a timeout longer
than any task can run (Hub had an hour), so a dead worker's tasks sat `started` that long.
Hub keeps the timeout short instead (HUB_VISIBILITY_TIMEOUT, from HUB_STALL_SECONDS) and
has each live worker re-score every message it still holds, running or waiting (an ETA
retry too), every `refresh_period`: only a dead worker's messages age past the timeout, so
a task may run up to its time limit and is never run twice at once because of it.
The same beat also runs kombu's restore sweep, which kombu itself runs only on the
event-loop path: a gevent or eventlet worker never restores a dead peer's messages otherwise
(celery/celery#4976, celery/kombu#1025).

That leans on kombu's private layout (the index's key, its scores, the delivery tag on
Celery's request); all of it is here, and `check_layout` refuses to start a worker on a
kombu whose layout differs. With an AMQP broker none of it applies: RabbitMQ requeues a
dead consumer's messages itself.
"""

import inspect
import logging
import time
from collections.abc import Iterable
from typing import Any

import kombu
from celery import Celery
from celery.worker.request import Request
from kombu.transport import redis as kombu_redis

log = logging.getLogger(__name__)


class LayoutChanged(RuntimeError):
    """The installed kombu no longer keeps unacked messages the way this module expects."""


def refresh_period(stall_seconds: float, visibility_timeout: float) -> float:
    """Heartbeat and re-score three times per stall threshold and per timeout, so one late or
    lost beat neither looks like a stall nor lets a live worker's message be restored."""
    return min(stall_seconds, visibility_timeout) / 3


def transport_options(stall_seconds: float, visibility_timeout: float) -> dict[str, Any]:
    """The Redis transport's restore settings: a sweep every `interval` seconds (kombu's
    default is every 10 x 10 s), each one scanning (throttle 1). The sweep's lock expires
    after one interval, not kombu's 5 minutes: a worker killed mid-sweep would otherwise
    keep every other worker from restoring anything that long. Harmless to other brokers."""
    interval = max(1.0, min(stall_seconds, visibility_timeout) / 6)
    return {"visibility_timeout": visibility_timeout, "unacked_restore_interval": interval,
            "unacked_restore_throttle": 1, "unacked_mutex_expire": interval}


def check_layout() -> None:
    """Fail loudly, naming kombu's version, if the private names we use are gone."""
    problems = [f"kombu.transport.redis.Channel.{name} is missing"
                for name in ("unacked_index_key", "global_keyprefix", "visibility_timeout",
                             "unacked_restore_interval", "unacked_restore_throttle")
                if not hasattr(kombu_redis.Channel, name)]
    for function, needles in ((kombu_redis.QoS.append, ("unacked_index_key", "delivery_tag",
                                                          "time()")),
                              (kombu_redis.QoS.restore_visible, ("visibility_timeout",))):
        source = inspect.getsource(function)
        problems += [f"{function.__qualname__} no longer uses {needle}"
                     for needle in needles if needle not in source]
    if not isinstance(getattr(Request, "message", None), property):
        problems.append("celery.worker.request.Request.message is missing")
    if problems:
        raise LayoutChanged(
            f"kombu {kombu.__version__} keeps unacked messages differently than Hub expects "
            f"({'; '.join(problems)}): tasks/visibility.py must be updated, or a dead "
            "worker's tasks would be restored while live workers still run them")


def delivery_tag(request: Any) -> str | None:
    message = getattr(request, "message", None)
    tag = getattr(message, "delivery_tag", None)
    return None if tag is None else str(tag)


class UnackedRefresher:
    """Re-scores the messages a worker holds, on a kombu connection of its own."""

    def __init__(self, celery_app: Celery) -> None:
        self.celery_app = celery_app
        self._connection: Any = None
        self._channel: Any = None

    def applies(self) -> bool:
        """Only the Redis transport (and its sentinel variant) hides unacked messages."""
        connection = self.celery_app.connection_for_write()
        try:
            return isinstance(connection.transport, kombu_redis.Transport)
        finally:
            connection.release()

    def refresh(self, tags: Iterable[str], now: float | None = None) -> int:
        """Score the held messages `now`; XX: a message acked meanwhile is not brought back."""
        mapping = {tag: time.time() if now is None else now for tag in tags}
        if not mapping:
            return 0
        channel = self._open()
        try:
            return int(channel.client.zadd(channel.unacked_index_key, mapping, xx=True, ch=True))
        except Exception:
            self.close()  # reconnect on the next beat
            raise

    def restore_expired(self) -> None:
        """Run kombu's own restore sweep (under its mutex): kombu runs it periodically only on
        the event-loop path (prefork, threads). A gevent or eventlet worker polls
        synchronously, and there an empty BRPOP reply raises Empty before the sweep is
        reached, so without this its dead peers' messages would never come back."""
        channel = self._open()
        try:
            channel.qos.restore_visible(num=channel.unacked_restore_limit, interval=1)
        except Exception:
            self.close()
            raise

    def _open(self) -> Any:
        if self._channel is None:
            self._connection = self.celery_app.connection_for_write()
            self._channel = self._connection.default_channel
        return self._channel

    def close(self) -> None:
        connection, self._connection, self._channel = self._connection, None, None
        if connection is not None:
            try:
                connection.release()
            except Exception:  # closing a broken connection: nothing left to save
                log.debug("closing the refresher's broker connection failed", exc_info=True)
