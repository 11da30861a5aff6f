"""REST at its edges: bodies that are not JSON, integers no database holds, sizes checked
before the first write, the Idempotency-Key header, and the owner's cancel (/me/tasks)."""

from collections.abc import Callable

import pytest
from flask import Flask
from flask.testing import FlaskClient

from events import current_publisher
from models import Notification, Task, db
from tests.conftest import user_token
from tests.unit.test_rest import problem

# One endpoint read through flask-smorest's parser, one through lean_json, each.
PARSED = ("/api/v1/tokens", "/api/v1/notifications", "/api/v1/me/notifications/read")
LEAN = ("/api/v1/publish", "/api/v1/tasks")


def rows(app: Flask, model: type) -> int:
    with app.app_context():
        return db.session.query(model).count()


@pytest.fixture
def user() -> dict[str, str]:
    return {"Authorization": f"Bearer {user_token('alice')}"}


def headers_for(path: str, auth: dict[str, str], user: dict[str, str]) -> dict[str, str]:
    return user if path.startswith("/api/v1/me/") else auth


def post_raw(client: FlaskClient, path: str, data: bytes, headers: dict[str, str],
             content_type: str = "application/json"):
    return client.post(path, data=data, headers=headers, content_type=content_type)


@pytest.mark.parametrize("path", PARSED + LEAN)
def test_deeply_nested_json_is_400_and_stores_nothing(
    app: Flask, client: FlaskClient, auth: dict[str, str], user: dict[str, str], path: str
) -> None:
    headers = headers_for(path, auth, user)
    for depth in (100_000, 65):  # past the interpreter's recursion limit, and just past ours
        body = b'{"data": ' + b"[" * depth + b"]" * depth + b"}"
        detail = problem(post_raw(client, path, body, headers), 400)["detail"]
        assert "nested deeper than 64" in detail
    assert rows(app, Task) == rows(app, Notification) == 0
    # 64 levels is still a body like any other (here: refused for its fields, not its shape).
    body = b'{"nope": ' + b"[" * 63 + b"]" * 63 + b"}"
    assert post_raw(client, path, body, headers).status_code == 422


@pytest.mark.parametrize("path", PARSED + LEAN)
def test_bodies_that_are_not_utf8_json_are_400(
    client: FlaskClient, auth: dict[str, str], user: dict[str, str], path: str
) -> None:
    headers = headers_for(path, auth, user)
    utf16 = '{"channel": "public:x", "type": "t", "name": "demo.count", "user": "a"}'
    for body in (b'{"user": "\xff"}', utf16.encode("utf-16"), b'{"user": "\\ud800"}'):
        problem(post_raw(client, path, body, headers), 400)


@pytest.mark.parametrize("constant", [b"NaN", b"Infinity", b"-Infinity", b"1e999"])
def test_nan_and_infinity_are_400_and_never_published(
    app: Flask, client: FlaskClient, auth: dict[str, str], constant: bytes
) -> None:
    body = b'{"channel": "public:x", "type": "t", "data": {"v": ' + constant + b"}}"
    problem(post_raw(client, "/api/v1/publish", body, auth), 400)
    body = b'{"name": "demo.count", "args": {"delay": ' + constant + b"}}"
    problem(post_raw(client, "/api/v1/tasks", body, auth), 400)
    body = b'{"user": "bob", "title": "t", "data": {"v": ' + constant + b"}}"
    problem(post_raw(client, "/api/v1/notifications", body, auth), 400)
    with app.app_context():
        assert current_publisher().recover("public:x", None).position.offset == 0
    assert rows(app, Task) == rows(app, Notification) == 0


@pytest.mark.parametrize("path", PARSED + LEAN)
def test_a_body_in_another_content_type_is_400(
    client: FlaskClient, auth: dict[str, str], user: dict[str, str], path: str
) -> None:
    headers = headers_for(path, auth, user)
    for content_type in ("text/plain", "application/x-www-form-urlencoded"):
        body = problem(post_raw(client, path, b'{"user": "a"}', headers, content_type), 400)
        assert "Content-Type: application/json" in body["detail"]


BIG = 2**63  # past every SQL integer
HUGE = 10**30


@pytest.mark.parametrize("query", [
    f"/api/v1/tasks?cursor={BIG}", f"/api/v1/tasks?cursor={2**31}",
    f"/api/v1/notifications?user=a&after_id={HUGE}", f"/api/v1/notifications?user=a&since_id={BIG}",
    f"/api/v1/me/tasks?cursor={HUGE}", f"/api/v1/me/notifications?after_id={BIG}",
    f"/api/v1/me/notifications?since_id={HUGE}", f"/api/v1/channels/public:x/history?since={BIG}",
])
def test_integers_past_what_the_database_holds_are_422(
    client: FlaskClient, auth: dict[str, str], user: dict[str, str], query: str
) -> None:
    body = problem(client.get(query, headers=headers_for(query, auth, user)), 422)
    assert body["errors"]


def test_big_ids_in_bodies_and_paths_are_422(client: FlaskClient, user: dict[str, str]) -> None:
    for ids in ([BIG], [1, HUGE], [2**31]):
        body = problem(client.post("/api/v1/me/notifications/read", json={"ids": ids},
                                   headers=user), 422)
        assert "ids" in body["errors"]
    for id_ in (BIG, HUGE, 2**31, "9" * 5000):
        body = problem(client.get(f"/api/v1/me/notifications/{id_}", headers=user), 422)
        assert body["errors"]
    problem(client.get(f"/api/v1/me/notifications/{2**31 - 1}", headers=user), 404)
    problem(client.get("/api/v1/me/notifications/00000000000000000000001", headers=user), 404)


def test_text_with_nul_is_422_not_a_database_error(
    app: Flask, client: FlaskClient, auth: dict[str, str]
) -> None:
    """PostgreSQL refuses NUL in text: every database gets the same 422 instead."""
    problem(client.post("/api/v1/notifications", headers=auth,
                        json={"user": "bob", "title": "a\x00b"}), 422)
    problem(client.post("/api/v1/tasks", headers=auth,
                        json={"name": "demo.count", "idempotency_key": "k\x00"}), 422)
    problem(client.get("/api/v1/tasks?name=a%00b", headers=auth), 422)
    problem(client.get("/api/v1/tasks/a%00b", headers=auth), 404)
    assert rows(app, Task) == rows(app, Notification) == 0


def test_a_notification_too_large_to_push_is_413_and_stores_nothing(
    app: Flask, client: FlaskClient, auth: dict[str, str]
) -> None:
    response = client.post("/api/v1/notifications", headers=auth, json={
        "users": ["bob", "a-much-longer-user-id"], "title": "t", "data": {"x": "y" * 100_000}})
    assert "exceeds" in problem(response, 413)["detail"]
    # Just under the limit for a short id, over it for the longest recipient: still refused.
    limit = app.config["HUB_MAX_MESSAGE_BYTES"]
    response = client.post("/api/v1/notifications", headers=auth, json={
        "users": ["b", "u" * 250], "title": "t", "data": {"x": "y" * (limit - 400)}})
    problem(response, 413)
    assert rows(app, Notification) == 0
    with app.app_context():
        assert current_publisher().recover("user:bob", None).position.offset == 0
    ok = client.post("/api/v1/notifications", headers=auth,
                     json={"user": "bob", "title": "t", "data": {"x": "y" * 1000}})
    assert ok.status_code == 201 and rows(app, Notification) == 1


def test_idempotency_key_header_is_the_body_key(
    client: FlaskClient, auth: dict[str, str], service_key: Callable[..., str]
) -> None:
    task = {"name": "demo.count", "user": "alice"}
    first = client.post("/api/v1/tasks", json=task, headers={**auth, "Idempotency-Key": "o-1"})
    assert first.status_code == 202
    again = client.post("/api/v1/tasks", json=task, headers={**auth, "Idempotency-Key": "o-1"})
    assert again.status_code == 200 and again.get_json()["id"] == first.get_json()["id"]
    body_key = client.post("/api/v1/tasks", json={**task, "idempotency_key": "o-1"},
                           headers=auth)
    assert body_key.status_code == 200 and body_key.get_json()["id"] == first.get_json()["id"]
    both = client.post("/api/v1/tasks", json={**task, "idempotency_key": "o-1"},
                       headers={**auth, "Idempotency-Key": "o-1"})
    assert both.status_code == 200

    note = {"user": "bob", "title": "hi"}
    ids = [client.post("/api/v1/notifications", json=note,
                       headers={**auth, "Idempotency-Key": "n-1"}).get_json()["ids"]
           for _ in range(2)]
    assert ids[0] == ids[1]
    publication = {"channel": "public:x", "type": "t", "data": 1}
    offsets = [client.post("/api/v1/publish", json=publication,
                           headers={**auth, "Idempotency-Key": "p-1"}).get_json()["offset"]
               for _ in range(2)]
    assert offsets == [1, 1]


@pytest.mark.parametrize("path,body", [
    ("/api/v1/tasks", {"name": "demo.count"}),
    ("/api/v1/notifications", {"user": "bob", "title": "hi"}),
    ("/api/v1/publish", {"channel": "public:x", "type": "t"}),
])
def test_idempotency_key_header_and_body_that_differ_are_422(
    app: Flask, client: FlaskClient, auth: dict[str, str], path: str, body: dict
) -> None:
    response = client.post(path, json={**body, "idempotency_key": "a"},
                           headers={**auth, "Idempotency-Key": "b"})
    assert "idempotency_key" in problem(response, 422)["errors"]
    response = client.post(path, json=body, headers={**auth, "Idempotency-Key": "x" * 201})
    assert "Idempotency-Key" in problem(response, 422)["errors"]
    assert rows(app, Task) == rows(app, Notification) == 0
    with app.app_context():
        assert current_publisher().recover("public:x", None).position.offset == 0


def test_openapi_documents_the_idempotency_header(client: FlaskClient) -> None:
    paths = client.get("/api/openapi.json").get_json()["paths"]
    for path in ("/api/v1/tasks", "/api/v1/notifications", "/api/v1/publish"):
        parameters = paths[path]["post"].get("parameters", [])
        assert {"in": "header", "name": "Idempotency-Key"}.items() <= parameters[0].items()
    assert "post" in paths["/api/v1/me/tasks/{task_id}/cancel"]


def test_the_owner_cancels_her_task_and_nobody_else_can(
    client: FlaskClient, auth: dict[str, str], user: dict[str, str]
) -> None:
    mine = client.post("/api/v1/tasks", json={"name": "demo.count", "user": "alice"},
                       headers=auth).get_json()["id"]
    bobs = client.post("/api/v1/tasks", json={"name": "demo.count", "user": "bob"},
                       headers=auth).get_json()["id"]
    nobodys = client.post("/api/v1/tasks", json={"name": "demo.count"},
                          headers=auth).get_json()["id"]
    for other in (bobs, nobodys, "no-such-task", "x" * 100):
        problem(client.post(f"/api/v1/me/tasks/{other}/cancel", headers=user), 404)
    for task_id in (bobs, nobodys):
        assert client.get(f"/api/v1/tasks/{task_id}", headers=auth).get_json()["state"] \
            == "queued"
    problem(client.post(f"/api/v1/me/tasks/{mine}/cancel", headers=auth), 401)
    response = client.post(f"/api/v1/me/tasks/{mine}/cancel", headers=user)
    assert response.status_code == 202, response.get_data(as_text=True)
    assert response.get_json()["id"] == mine and response.get_json()["state"] == "cancelled"
    assert problem(client.post(f"/api/v1/me/tasks/{mine}/cancel", headers=user),
                   409)["detail"].endswith("(cancelled)")
