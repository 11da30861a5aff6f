"""Socket.IO namespace, channel rules, history and recovery, and publish(): the only emitter.

Never imports hub/ or tasks/.
"""

from events.backend import HistoryBackend, MemoryBackend, Position, Recovery
from events.publisher import (
    EXTENSION,
    Publisher,
    PublishError,
    current_publisher,
    publish,
    publish_many,
)
from events.redis_backend import RedisBackend

__all__ = [
    "EXTENSION", "HistoryBackend", "MemoryBackend", "Position", "PublishError", "Publisher",
    "Recovery", "RedisBackend", "current_publisher", "publish", "publish_many",
]
