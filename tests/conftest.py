"""Unit-level fixtures: an app on SQLite with the in-memory history backend.

Integration fixtures (real Redis, worker, hub processes) live in tests/integration.
"""

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient, FlaskCliRunner
from flask_socketio import SocketIOTestClient

from events import tokens
from hub import create_app
from hub.auth import create_service
from models import db

JWT_SECRET = "unit-test-jwt-secret-that-is-long-enough-0123456789"


@pytest.fixture
def app(tmp_path: Path) -> Iterator[Flask]:
    app = create_app({
        "TESTING": True,
        "INSTANCE_DIR": str(tmp_path),
        "SQLALCHEMY_DATABASE_URI": f"sqlite:///{tmp_path / 'unit.db'}",
        "HUB_JWT_SECRET": JWT_SECRET,
        "HUB_BROKER_URL": "memory://",
        "HUB_TOKEN_CHECK_SECONDS": 0.2,
    })
    with app.app_context():
        db.create_all()
    yield app
    with app.app_context():
        db.session.remove()
        db.engine.dispose()


@pytest.fixture
def client(app: Flask) -> FlaskClient:
    return app.test_client()


@pytest.fixture
def runner(app: Flask) -> FlaskCliRunner:
    return app.test_cli_runner()


@pytest.fixture
def service_key(app: Flask) -> Callable[..., str]:
    """Make a service and return its API key; scopes default to all but admin."""

    def make(name: str = "svc", scopes: list[str] | None = None) -> str:
        with app.app_context():
            return create_service(name, scopes)[1]

    return make


@pytest.fixture
def auth(service_key: Callable[..., str]) -> dict[str, str]:
    return {"Authorization": f"Bearer {service_key()}"}


def user_token(sub: str, ttl: int = 600, channels: list[str] | None = None) -> str:
    return tokens.issue(JWT_SECRET, sub, ttl, channels)[0]


@pytest.fixture
def socket_client(app: Flask, client: FlaskClient) -> Iterator[Callable[..., SocketIOTestClient]]:
    """Socket.IO test clients authenticated as a user (through the real namespace)."""
    made: list[SocketIOTestClient] = []

    def make(sub: str = "alice", **auth: Any) -> SocketIOTestClient:
        auth.setdefault("token", user_token(sub))
        socketio = app.extensions["socketio"]
        sock = socketio.test_client(app, flask_test_client=client, auth=auth)
        made.append(sock)
        return sock

    yield make
    for sock in made:
        if sock.is_connected():
            sock.disconnect()
