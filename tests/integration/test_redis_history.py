"""The Redis history backend against a real Redis: the same rules as memory, plus the wire."""

import json
import threading
import uuid
from collections.abc import Iterator

import pytest
import redis

from events import Position, Publisher, PublishError, RedisBackend
from events.wire import room_of

pytestmark = pytest.mark.integration


@pytest.fixture
def client(redis_url: str) -> Iterator[redis.Redis]:
    conn = redis.Redis.from_url(f"{redis_url.rsplit('/', 1)[0]}/15")
    yield conn
    conn.flushdb()
    conn.close()


def backend(client: redis.Redis, size: int = 5) -> RedisBackend:
    return RedisBackend(client, size=size, ttl=60, mq_channel="hubtest:socketio",
                        prefix=f"p{uuid.uuid4().hex[:6]}")


def test_offsets_trim_and_recovery(client: redis.Redis) -> None:
    history = backend(client, size=5)
    publisher = Publisher(history, max_bytes=1024)
    sent = [publisher.publish("public:r", "r.item", {"n": n}) for n in range(8)]
    assert [e["offset"] for e in sent] == list(range(1, 9))
    epoch = sent[0]["epoch"]
    rec = history.recover("public:r", Position(5, epoch))
    assert rec.recovered and [p["data"]["n"] for p in rec.publications] == [5, 6, 7]
    assert rec.publications == sent[5:]
    assert not history.recover("public:r", Position(2, epoch)).recovered  # trimmed away
    assert history.recover("public:r", Position(3, epoch)).recovered  # 4..8 are kept
    assert not history.recover("public:r", Position(1, "nope")).recovered
    assert history.recover("public:r", Position(8, epoch)).publications == []
    assert client.ttl(f"{history.prefix}:ch:public:r:log") > 0


def test_a_flush_opens_a_new_epoch(client: redis.Redis) -> None:
    history = backend(client)
    publisher = Publisher(history, max_bytes=1024)
    before = publisher.publish("public:f", "f", 1)
    client.flushdb()
    after = publisher.publish("public:f", "f", 2)
    assert after["offset"] == 1 and after["epoch"] != before["epoch"]
    assert not history.recover("public:f", Position(1, before["epoch"])).recovered


def test_subscribing_to_an_empty_channel_pins_its_epoch(client: redis.Redis) -> None:
    history = backend(client)
    position = history.recover("public:empty", None).position
    assert position.offset == 0
    first = Publisher(history, max_bytes=1024).publish("public:empty", "e", 1)
    assert first["epoch"] == position.epoch
    rec = history.recover("public:empty", position)
    assert rec.recovered and [p["offset"] for p in rec.publications] == [1]


def test_the_queue_message_is_python_socketio_emit_json(client: redis.Redis) -> None:
    history = backend(client)
    pubsub = client.pubsub()
    pubsub.subscribe("hubtest:socketio")
    pubsub.get_message(timeout=2)
    envelope = Publisher(history, max_bytes=1024).publish("public:w", "w.hi", {"ü": "ok"})
    message = pubsub.get_message(timeout=2)
    body = json.loads(message["data"])
    assert body["method"] == "emit" and body["event"] == "w.hi" and body["room"] == "public:w"
    assert body["namespace"] == "/" and body["data"] == [envelope]
    # The room leads, so a listener can pass over it unparsed.
    assert room_of(message["data"]) == "public:w"
    pubsub.close()


def test_publish_many_is_one_ordered_batch(client: redis.Redis) -> None:
    history = backend(client, size=1000)
    publisher = Publisher(history, max_bytes=1024)
    publisher.publish("public:a", "x", 0)
    items = [("public:a" if n % 2 else "public:b", "x", n) for n in range(1, 601)]
    sent = publisher.publish_many(items)
    assert [e["data"] for e in sent] == list(range(1, 601))
    assert [e["offset"] for e in sent if e["channel"] == "public:a"] == list(range(2, 302))
    assert [e["offset"] for e in sent if e["channel"] == "public:b"] == list(range(1, 301))
    stored = history.recover("public:a", Position(1, sent[0]["epoch"])).publications
    assert stored == [e for e in sent if e["channel"] == "public:a"]


def test_publish_many_reloads_a_flushed_script_cache(client: redis.Redis) -> None:
    history = backend(client)
    publisher = Publisher(history, max_bytes=1024)
    client.script_flush()  # as after a Redis restart
    sent = publisher.publish_many([("public:s", "s", 1), ("public:s", "s", 2)])
    assert [e["offset"] for e in sent] == [1, 2]


def test_publish_many_stores_nothing_when_one_item_is_bad(client: redis.Redis) -> None:
    history = backend(client)
    publisher = Publisher(history, max_bytes=64)
    with pytest.raises(PublishError):
        publisher.publish_many([("public:n", "n", 1), ("public:n", "n", "x" * 100)])
    with pytest.raises(PublishError):
        publisher.publish_many([("public:n", "n", 1), ("bad channel", "n", 2)])
    assert history.recover("public:n", None).position.offset == 0


def test_concurrent_publishers_get_distinct_contiguous_offsets(client: redis.Redis) -> None:
    history = backend(client, size=1000)
    offsets: list[int] = []
    lock = threading.Lock()

    def publish_many() -> None:
        publisher = Publisher(history, max_bytes=1024)
        for n in range(50):
            offset = publisher.publish("public:c", "c", n)["offset"]
            with lock:
                offsets.append(offset)

    threads = [threading.Thread(target=publish_many) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(offsets) == list(range(1, 201))
