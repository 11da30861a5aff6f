"""Offsets, epochs and recovery rules, on the in-memory backend (same rules as Redis)."""

import json

from events import MemoryBackend, Position, Publisher


def tail(n: int) -> str:
    return json.dumps({"channel": "c", "type": "t", "data": n})[1:]


def filled(count: int, size: int = 10) -> MemoryBackend:
    backend = MemoryBackend(size=size, ttl=60)
    for n in range(1, count + 1):
        backend.append("c", "c", "t", tail(n))
    return backend


def test_offsets_grow_by_one_in_one_epoch() -> None:
    backend = MemoryBackend(size=10, ttl=60)
    positions = [backend.append("c", "c", "t", tail(n)) for n in range(3)]
    assert [p.offset for p in positions] == [1, 2, 3]
    assert len({p.epoch for p in positions}) == 1


def test_recovery_returns_exactly_the_missed() -> None:
    backend = filled(5)
    epoch = backend.recover("c", None).position.epoch
    rec = backend.recover("c", Position(2, epoch))
    assert rec.recovered and [p["offset"] for p in rec.publications] == [3, 4, 5]
    assert [p["data"] for p in rec.publications] == [3, 4, 5]


def test_up_to_date_is_recovered_with_nothing() -> None:
    backend = filled(3)
    epoch = backend.recover("c", None).position.epoch
    rec = backend.recover("c", Position(3, epoch))
    assert rec.recovered and rec.publications == []


def test_gap_beyond_history_is_not_recovered() -> None:
    backend = filled(15, size=10)  # keeps offsets 6..15
    epoch = backend.recover("c", None).position.epoch
    assert not backend.recover("c", Position(4, epoch)).recovered
    rec = backend.recover("c", Position(5, epoch))
    assert rec.recovered and [p["offset"] for p in rec.publications] == list(range(6, 16))


def test_other_epoch_or_future_offset_is_not_recovered() -> None:
    backend = filled(3)
    epoch = backend.recover("c", None).position.epoch
    assert not backend.recover("c", Position(1, "other")).recovered
    assert not backend.recover("c", Position(9, epoch)).recovered


def test_flush_opens_a_new_epoch_and_restarts_offsets() -> None:
    backend = filled(3)
    old = backend.recover("c", None).position
    backend.flush()
    new = backend.append("c", "c", "t", tail(1))
    assert new.offset == 1 and new.epoch != old.epoch
    assert not backend.recover("c", old).recovered


def test_limit_pages_history() -> None:
    backend = filled(8)
    epoch = backend.recover("c", None).position.epoch
    rec = backend.recover("c", Position(0, epoch), limit=3)
    assert [p["offset"] for p in rec.publications] == [1, 2, 3]


def test_publisher_envelope_and_limits() -> None:
    delivered: list[tuple[str, dict, str]] = []
    backend = MemoryBackend(size=10, ttl=60, deliver=lambda *a: delivered.append(a))
    publisher = Publisher(backend, max_bytes=200)
    envelope = publisher.publish("public:x", "demo.hello", {"n": 1}, trace_id="abc")
    assert envelope["offset"] == 1 and envelope["channel"] == "public:x"
    assert envelope["type"] == "demo.hello" and envelope["trace_id"] == "abc"
    assert envelope["ts"].endswith("Z")
    assert delivered == [("demo.hello", envelope, "public:x")]
    import pytest

    from events import PublishError

    with pytest.raises(PublishError) as too_large:
        publisher.publish("public:x", "t", "x" * 500)
    assert too_large.value.code == "too_large"
    with pytest.raises(PublishError) as bad_channel:
        publisher.publish("no spaces", "t", 1)
    assert bad_channel.value.code == "invalid"
    with pytest.raises(PublishError):
        publisher.publish("public:x", "t", {1, 2})
