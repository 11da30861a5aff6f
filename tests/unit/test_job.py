from tasks.job import Job


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_progress_is_coalesced_latest_wins() -> None:
    sent: list[tuple[int, int | None, str | None]] = []
    clock = Clock()
    job = Job("t", "alice", 1, lambda *a: sent.append(a), hz=10, clock=clock)
    for i in range(1, 1001):  # a tight loop within one interval
        job.progress(i, 1000)
    assert sent == [(1, 1000, None)]
    clock.now += 0.11
    job.progress(1001, 2000, "later")
    assert sent[-1] == (1001, 2000, "later")
    job.progress(1002, 2000)
    job.flush()
    assert sent[-1] == (1002, 2000, None)
    job.flush()  # nothing pending: nothing sent
    assert len(sent) == 3


def test_zero_hz_sends_everything() -> None:
    sent: list[object] = []
    job = Job("t", None, 1, lambda *a: sent.append(a), hz=0)
    for i in range(5):
        job.progress(i)
    assert len(sent) == 5
