"""Property-based REST tests from the OpenAPI document (schemathesis).

Every operation of /api/openapi.json gets generated requests, valid and invalid, against the
app in-process (WSGI) on a real Redis and a real database: SQLite, and PostgreSQL when
TEST_DATABASE_URL is set. Whatever comes in, the answer is never a 5xx and every error is
application/problem+json. Seeded and derandomized, so a run is repeatable; the example
counts keep it to a minute or two per database.
"""

import json
import os
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import redis
import schemathesis
from flask import Flask
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis.errors import Unsatisfiable
from schemathesis import GenerationMode

from events import tokens
from hub import create_app
from hub.auth import create_service
from models import db
from tests.integration.conftest import DATABASES, postgres_database

pytestmark = pytest.mark.integration

JWT_SECRET = "schemathesis-jwt-secret-that-is-long-enough-0123456789"
USER = "alice"
# Per operation and generation mode; HUB_SCHEMATHESIS_EXAMPLES raises it for a deeper run.
EXAMPLES = int(os.environ.get("HUB_SCHEMATHESIS_EXAMPLES", "60"))
PROBLEM = "application/problem+json"


@pytest.fixture(params=DATABASES)
def live_app(request: pytest.FixtureRequest, redis_url: str,
             tmp_path: Path) -> Iterator[Flask]:
    """The REST app on a real Redis (its own db index) and a real database (its tables from
    the models: Alembic's logging set-up would reconfigure this process's loggers)."""
    databases = postgres_database() if request.param == "postgresql" else None
    database_url = next(databases) if databases else f"sqlite:///{tmp_path / 'hub.db'}"
    url = f"{redis_url.rsplit('/', 1)[0]}/12"  # apart from the stacks' 1..4
    redis.Redis.from_url(url).flushdb()
    app = create_app({
        "HUB_ENV": "testing", "TESTING": True, "INSTANCE_DIR": str(tmp_path),
        "SQLALCHEMY_DATABASE_URI": database_url, "REDIS_URL": url, "HUB_BROKER_URL": url,
        "HUB_HISTORY_BACKEND": "redis", "HUB_PROCESS": "cli",
        "HUB_JWT_SECRET": JWT_SECRET, "HUB_REST_RATE": 10**9,
    })
    with app.app_context():
        db.create_all()
    try:
        yield app
    finally:
        with app.app_context():
            db.session.remove()
            db.engine.dispose()
        if databases:
            next(databases, None)
        redis.Redis.from_url(url).flushdb()


def _headers(app: Flask) -> tuple[dict[str, str], dict[str, str]]:
    """(service headers with the admin scope, user headers), with a few rows to find."""
    with app.app_context():
        key = create_service("fuzz", ["admin"])[1]
    service = {"Authorization": f"Bearer {key}"}
    user = {"Authorization": f"Bearer {tokens.issue(JWT_SECRET, USER, 3600, None)[0]}"}
    client = app.test_client()
    for n in range(3):
        assert client.post("/api/v1/tasks", headers=service, json={
            "name": "demo.count", "args": {"steps": 1}, "user": USER}).status_code == 202
        assert client.post("/api/v1/notifications", headers=service, json={
            "user": USER, "title": f"hello {n}"}).status_code == 201
    return service, user


def _problem(response: Any) -> str | None:
    """What is wrong with the response, or None."""
    status = response.status_code
    if status >= 500:
        return f"{status}: {response.content[:300]!r}"
    if status < 400:
        return None
    content_type = (response.headers.get("content-type") or [""])[0]
    if not content_type.startswith(PROBLEM):
        return f"{status} as {content_type!r}, not {PROBLEM}"
    try:
        body = json.loads(response.content)
    except ValueError:
        return f"{status}: the problem body is not JSON"
    if body.get("status") != status or not body.get("title"):
        return f"{status}: problem body {body!r} lacks its status or title"
    return None


def _fuzz(operation: Any, mode: GenerationMode, headers: dict[str, str]) -> list[str]:
    """Run one operation's examples in one mode; each distinct failure, with a curl to
    replay it."""
    found: dict[str, str] = {}
    strategy = operation.as_strategy(generation_mode=mode)

    @settings(max_examples=EXAMPLES, derandomize=True, database=None, deadline=None,
              phases=[Phase.explicit, Phase.generate], suppress_health_check=list(HealthCheck))
    @given(case=strategy)
    def run(case: schemathesis.Case) -> None:
        response = case.call(headers=headers)
        wrong = _problem(response)
        if wrong is not None:
            found.setdefault(wrong.split(":")[0], f"{operation.label} ({mode}): {wrong}\n    "
                             f"{case.as_curl_command(headers=headers)[:600]}")

    try:
        run()
    except Unsatisfiable:
        # Negative mode on an operation with no input to make invalid (GET /task-types).
        assert mode is GenerationMode.NEGATIVE, operation.label
    return list(found.values())


@pytest.mark.timeout(600)
def test_every_operation_answers_without_5xx_and_errors_are_problems(live_app: Flask) -> None:
    service, user = _headers(live_app)
    schema = schemathesis.openapi.from_wsgi("/api/openapi.json", live_app)
    operations = [result.ok() for result in schema.get_all_operations()]
    assert len(operations) >= 15, [op.label for op in operations]
    started = time.monotonic()
    failures: list[str] = []
    for operation in operations:
        headers = user if operation.path.startswith("/api/v1/me/") else service
        for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE):
            failures += _fuzz(operation, mode, headers)
    elapsed = time.monotonic() - started
    print(f"schemathesis: {len(operations)} operations, {EXAMPLES} examples per mode, "
          f"{elapsed:.1f} s")
    assert not failures, "\n".join(failures)
