"""Integration fixtures: a real Redis, a real database, real hub/worker/beat processes.

The stack runs once per (async mode, database): eventlet and gevent
(HUB_TEST_ASYNC_MODES), SQLite and, when TEST_DATABASE_URL is set, PostgreSQL.
"""

import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest

from hub.embedded import EmbeddedRedis
from tests.support.stack import Stack, close_all

pytestmark = pytest.mark.integration

ASYNC_MODES = [m for m in os.environ.get("HUB_TEST_ASYNC_MODES", "eventlet,gevent").split(",")
               if m]
DATABASES = ["sqlite"] + (["postgresql"] if os.environ.get("TEST_DATABASE_URL") else [])


@pytest.fixture(scope="session")
def redis_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """HUB_TEST_REDIS_URL, or a private redis-server on a free port for this session."""
    given = os.environ.get("HUB_TEST_REDIS_URL")
    if given:
        yield given
        return
    server = EmbeddedRedis(tmp_path_factory.mktemp("redis"), persist=False)
    url = server.start()
    yield url
    server.stop()


def postgres_database() -> Iterator[str]:
    """A fresh database on TEST_DATABASE_URL's server, dropped afterwards."""
    base = os.environ["TEST_DATABASE_URL"]
    name = f"hub_test_{uuid.uuid4().hex[:8]}"
    admin_url = base.replace("postgresql+psycopg://", "postgresql://")
    with psycopg.connect(admin_url, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    try:
        yield admin_url.rsplit("/", 1)[0] + f"/{name}"
    finally:
        with psycopg.connect(admin_url, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


STACKS = [(mode, database) for database in DATABASES for mode in ASYNC_MODES]


@pytest.fixture(scope="session", params=STACKS, ids=[f"{m}-{d}" for m, d in STACKS])
def stack(request: pytest.FixtureRequest, redis_url: str,
          tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    mode, database = request.param
    workdir = tmp_path_factory.mktemp(f"stack-{mode}-{database}")
    db_index = STACKS.index(request.param) + 1
    url = f"{redis_url.rsplit('/', 1)[0]}/{db_index}"
    databases = postgres_database() if database == "postgresql" else None
    database_url = next(databases) if databases else f"sqlite:///{Path(workdir) / 'hub.db'}"
    hub = Stack(mode, database_url, url, Path(workdir))
    try:
        hub.start()
        yield hub
    finally:
        hub.stop()
        if databases:
            next(databases, None)


@pytest.fixture
def fresh_clients(stack: Stack) -> Iterator[Stack]:
    """The stack, with every client a test opened closed afterwards."""
    yield stack
    close_all(stack.clients)
    stack.clients.clear()
