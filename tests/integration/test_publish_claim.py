"""An idempotent publish claims its key only briefly: a request that dies between the claim
and its answer (or a Redis that stalls before the claim's release lands) must not lock
the key for the day the answer itself is kept."""

from pathlib import Path

import pytest
import redis
from flask import Flask

from hub import create_app
from hub.api import publish
from hub.auth import create_service
from models import db

pytestmark = pytest.mark.integration


def test_the_in_progress_claim_expires_soon(redis_url: str, tmp_path: Path,
                                             monkeypatch: pytest.MonkeyPatch) -> None:
    url = f"{redis_url.rsplit('/', 1)[0]}/13"
    client = redis.Redis.from_url(url)
    client.flushdb()
    app: Flask = create_app({
        "HUB_ENV": "testing", "TESTING": True, "INSTANCE_DIR": str(tmp_path),
        "SQLALCHEMY_DATABASE_URI": f"sqlite:///{tmp_path / 'hub.db'}", "REDIS_URL": url,
        "HUB_BROKER_URL": url, "HUB_HISTORY_BACKEND": "redis", "HUB_PROCESS": "cli",
        "HUB_JWT_SECRET": "claim-test-jwt-secret-that-is-long-enough-0123"})
    with app.app_context():
        db.create_all()
        key = create_service("claims")[1]
    seen: list[int] = []

    def stalled(body: dict[str, object]) -> dict[str, object]:
        seen.extend(client.ttl(k) for k in client.scan_iter("*:idem:publish:*"))
        raise redis.TimeoutError("Redis stopped answering")

    monkeypatch.setattr(publish, "_publish", stalled)
    response = app.test_client().post(
        "/api/v1/publish", headers={"Authorization": f"Bearer {key}"},
        json={"channel": "public:claims", "type": "t.x", "data": 1, "idempotency_key": "k1"})
    assert response.status_code == 503
    assert seen and all(0 < ttl <= publish.PENDING_TTL for ttl in seen), seen
