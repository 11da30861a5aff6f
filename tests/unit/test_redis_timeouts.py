"""Redis calls against a server that accepts connections and never answers (a stalled Redis):
no retry after a timeout, and the REST rate limiter fails open behind a circuit breaker."""

import socket
from collections.abc import Iterator

import pytest
import redis

from events.redis_backend import connect
from hub.config import ConfigError, load_config
from hub.errors import Problem
from hub.rate_limit import RateLimiter


class Stalled:
    """A listening socket nobody accepts on: the kernel completes each TCP handshake and the
    request then waits forever, like a SIGSTOPped redis-server. Counts the connections."""

    def __init__(self) -> None:
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(64)
        self.url = f"redis://127.0.0.1:{self.sock.getsockname()[1]}/0"
        self.accepted: list[socket.socket] = []

    def connections(self) -> int:
        """Connections made so far (taken off the backlog)."""
        self.sock.setblocking(False)
        while True:
            try:
                self.accepted.append(self.sock.accept()[0])
            except BlockingIOError:
                return len(self.accepted)

    def close(self) -> None:
        for conn in self.accepted:
            conn.close()
        self.sock.close()


@pytest.fixture
def stalled() -> Iterator[Stalled]:
    server = Stalled()
    yield server
    server.close()


def test_a_timeout_is_not_retried(stalled: Stalled) -> None:
    client = connect(stalled.url, timeout=0.1)
    with pytest.raises(redis.TimeoutError):
        client.ping()
    assert stalled.connections() == 1  # redis-py's Retry would have connected 3 times


def test_rate_limit_fails_open_and_still_limits(stalled: Stalled) -> None:
    limiter = RateLimiter(connect(stalled.url), per_second=3, prefix="t", timeout=0.1,
                          break_seconds=60)
    # The window is one second: if the checks straddle a boundary, they start over.
    for _ in range(2):
        try:
            for _ in range(6):
                limiter.check("svc:1")
        except Problem as exc:
            assert exc.code == 429
            break
    else:
        pytest.fail("the limit was never reached")
    assert stalled.connections() == 1  # one try, then Redis is skipped for break_seconds


def test_config_refuses_a_bad_redis_timeout() -> None:
    assert load_config({"HUB_REDIS_TIMEOUT": "0.5"})["HUB_REDIS_TIMEOUT"] == 0.5
    for bad in ("soon", "0", "-1", "nan"):
        with pytest.raises(ConfigError, match="HUB_REDIS_TIMEOUT"):
            load_config({"HUB_REDIS_TIMEOUT": bad})
