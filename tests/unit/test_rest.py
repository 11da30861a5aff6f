"""REST behaviour through the Flask test client: auth, validation, problem+json, tokens."""

import gc
import re
from collections.abc import Callable

from flask.testing import FlaskClient

from events import tokens
from hub import heap
from tests.conftest import JWT_SECRET, user_token


def problem(response, status: int) -> dict:
    assert response.status_code == status, response.get_data(as_text=True)
    assert response.mimetype == "application/problem+json"
    body = response.get_json()
    assert body["status"] == status and body["title"] and body["detail"]
    assert "Traceback" not in response.get_data(as_text=True)
    return body


def test_missing_malformed_unknown_and_revoked_keys_are_401(
    client: FlaskClient, runner, service_key: Callable[..., str]
) -> None:
    problem(client.get("/api/v1/tasks"), 401)
    problem(client.get("/api/v1/tasks", headers={"Authorization": "Bearer nope"}), 401)
    problem(client.get("/api/v1/tasks", headers={"Authorization": "Basic abc"}), 401)
    problem(client.get("/api/v1/tasks",
                       headers={"Authorization": "Bearer hub_deadbeef_secret"}), 401)
    key = service_key("victim")
    forged = key[:-3] + ("aaa" if not key.endswith("aaa") else "bbb")
    problem(client.get("/api/v1/tasks", headers={"Authorization": f"Bearer {forged}"}), 401)
    assert client.get("/api/v1/tasks", headers={"Authorization": f"Bearer {key}"}).status_code \
        == 200
    assert runner.invoke(args=["services", "revoke", "victim"]).exit_code == 0
    body = problem(client.get("/api/v1/tasks", headers={"Authorization": f"Bearer {key}"}), 401)
    assert "revoked" in body["detail"]


def test_missing_scope_is_403(client: FlaskClient, service_key: Callable[..., str]) -> None:
    key = service_key("notifier", ["notify"])
    body = problem(client.get("/api/v1/tasks", headers={"Authorization": f"Bearer {key}"}), 403)
    assert "tasks" in body["detail"]
    problem(client.post("/api/v1/tokens", json={"user": "a"},
                        headers={"Authorization": f"Bearer {key}"}), 403)


def test_unknown_task_and_invalid_args_are_422_with_field_errors(
    client: FlaskClient, auth: dict[str, str]
) -> None:
    body = problem(client.post("/api/v1/tasks", json={"name": "nope.nothing"}, headers=auth), 422)
    assert "name" in body["errors"]
    body = problem(client.post("/api/v1/tasks", headers=auth,
                               json={"name": "demo.count", "args": {"steps": "many"}}), 422)
    assert "steps" in body["errors"]["args"]
    body = problem(client.post("/api/v1/tasks", json={"name": "demo.count",
                                                      "args": {"steps": 0, "x": 1}}, headers=auth),
                   422)
    assert set(body["errors"]["args"]) == {"steps", "x"}
    body = problem(client.post("/api/v1/tasks", json={"args": {}}, headers=auth), 422)
    assert "name" in body["errors"]
    body = problem(client.post("/api/v1/tasks", json={"name": "demo.count", "user": "a b"},
                               headers=auth), 422)
    assert "user" in body["errors"]
    problem(client.post("/api/v1/tasks", json={"name": "demo.count", "args": [1]}, headers=auth),
            422)


def test_malformed_json_and_wrong_types_are_4xx(client: FlaskClient, auth: dict[str, str]) -> None:
    response = client.post("/api/v1/tasks", data="{not json", headers=auth,
                           content_type="application/json")
    assert 400 <= response.status_code < 500
    problem(response, response.status_code)
    response = client.post("/api/v1/tasks", json=[1, 2], headers=auth)
    problem(response, 422)
    problem(client.get("/api/v1/tasks?limit=0", headers=auth), 422)
    problem(client.get("/api/v1/tasks?cursor=abc", headers=auth), 422)
    problem(client.get("/api/v1/tasks?state=exploded", headers=auth), 422)


def test_too_large_body_is_413(client: FlaskClient, auth: dict[str, str]) -> None:
    response = client.post("/api/v1/publish", headers=auth, json={
        "channel": "public:x", "type": "big", "data": "x" * 200_000})
    problem(response, 413)


def test_unknown_routes_and_methods_are_problems(client: FlaskClient, auth: dict) -> None:
    problem(client.get("/api/v1/nothing-here", headers=auth), 404)
    problem(client.get("/api/v1/tasks/does-not-exist", headers=auth), 404)
    problem(client.post("/api/v1/tasks/does-not-exist/cancel", headers=auth), 404)
    problem(client.delete("/api/v1/tasks", headers=auth), 405)


def test_submit_is_idempotent_per_service(client: FlaskClient, auth: dict[str, str],
                                          service_key: Callable[..., str]) -> None:
    body = {"name": "demo.count", "args": {"steps": 2}, "user": "alice",
            "idempotency_key": "order-42"}
    first = client.post("/api/v1/tasks", json=body, headers=auth)
    assert first.status_code == 202
    assert first.headers["Location"].endswith(first.get_json()["id"])
    again = client.post("/api/v1/tasks", json=body, headers=auth)
    assert again.status_code == 200 and again.get_json()["id"] == first.get_json()["id"]
    other = {"Authorization": f"Bearer {service_key('other')}"}
    third = client.post("/api/v1/tasks", json=body, headers=other)
    assert third.status_code == 202 and third.get_json()["id"] != first.get_json()["id"]


def test_task_record_list_and_cursor(client: FlaskClient, auth: dict[str, str]) -> None:
    ids = [client.post("/api/v1/tasks", json={"name": "demo.count", "user": "u1"},
                       headers=auth).get_json()["id"] for _ in range(5)]
    record = client.get(f"/api/v1/tasks/{ids[0]}", headers=auth).get_json()
    assert record["state"] == "queued" and record["channel"] == f"task:{ids[0]}"
    assert set(record) >= {"id", "name", "state", "user", "args", "progress", "result", "error",
                           "attempts", "created_at", "started_at", "finished_at", "channel"}
    page = client.get("/api/v1/tasks?user=u1&limit=2", headers=auth).get_json()
    seen = [item["id"] for item in page["items"]]
    while page["next_cursor"] is not None:
        page = client.get(f"/api/v1/tasks?user=u1&limit=2&cursor={page['next_cursor']}",
                          headers=auth).get_json()
        seen += [item["id"] for item in page["items"]]
    assert seen == list(reversed(ids))
    assert client.get("/api/v1/tasks?user=nobody", headers=auth).get_json()["items"] == []


def test_cancel_queued_then_again_is_409(client: FlaskClient, auth: dict[str, str]) -> None:
    created = client.post("/api/v1/tasks", json={"name": "demo.count"}, headers=auth)
    task_id = created.get_json()["id"]
    response = client.post(f"/api/v1/tasks/{task_id}/cancel", headers=auth)
    assert response.status_code == 202 and response.get_json()["state"] == "cancelled"
    problem(client.post(f"/api/v1/tasks/{task_id}/cancel", headers=auth), 409)


def test_tokens_are_user_jwts(client: FlaskClient, auth: dict[str, str]) -> None:
    response = client.post("/api/v1/tokens", json={"user": "alice", "channels": ["org:*"],
                                                   "ttl": 120}, headers=auth)
    assert response.status_code == 201
    identity = tokens.verify(JWT_SECRET, response.get_json()["token"])
    assert identity.sub == "alice" and identity.channels == ("org:*",)
    problem(client.post("/api/v1/tokens", json={"user": "alice", "ttl": 1}, headers=auth), 422)
    problem(client.post("/api/v1/tokens", json={}, headers=auth), 422)


def test_publish_and_history(client: FlaskClient, auth: dict[str, str]) -> None:
    for n in range(3):
        response = client.post("/api/v1/publish", headers=auth, json={
            "channel": "public:news", "type": "news.item", "data": {"n": n}})
        assert response.status_code == 202
        assert response.get_json()["offset"] == n + 1
    history = client.get("/api/v1/channels/public:news/history?since=1", headers=auth).get_json()
    assert history["recovered"] and [p["data"]["n"] for p in history["publications"]] == [1, 2]
    body = problem(client.post("/api/v1/publish", headers=auth, json={
        "channel": "public:news", "type": "task.succeeded", "data": {}}), 422)
    assert "type" in body["errors"]
    problem(client.post("/api/v1/publish", headers=auth, json={
        "channel": "bad channel", "type": "x", "data": {}}), 422)
    problem(client.get("/api/v1/channels/bad%20channel/history", headers=auth), 422)



def test_task_types_describe_arguments(client: FlaskClient, auth: dict[str, str]) -> None:
    types = {t["name"]: t for t in client.get("/api/v1/task-types", headers=auth).get_json()}
    schema = types["demo.count"]["args_schema"]
    assert schema["properties"]["steps"]["type"] == "integer"
    assert schema["properties"]["steps"]["minimum"] == 1


def test_me_tasks_needs_a_user_token(client: FlaskClient, auth: dict[str, str]) -> None:
    client.post("/api/v1/tasks", json={"name": "demo.count", "user": "alice"}, headers=auth)
    client.post("/api/v1/tasks", json={"name": "demo.count", "user": "bob"}, headers=auth)
    problem(client.get("/api/v1/me/tasks"), 401)
    mine = client.get("/api/v1/me/tasks", headers={
        "Authorization": f"Bearer {user_token('alice')}"}).get_json()
    assert [t["user"] for t in mine["items"]] == ["alice"]


def test_health_and_openapi(client: FlaskClient) -> None:
    assert client.get("/healthz").get_json() == {"status": "ok"}
    assert client.get("/readyz").status_code == 200
    spec = client.get("/api/openapi.json").get_json()
    assert "/api/v1/tasks" in spec["paths"]
    assert spec["paths"]["/api/v1/tasks"]["post"]["summary"] == "Trigger a task"
    docs = client.get("/api/docs").get_data(as_text=True)
    assert "/static/vendor/swagger-ui/swagger-ui-bundle.js" in docs
    assert "hub_connections" in client.get("/metrics").get_data(as_text=True)


def test_metrics_time_garbage_collections(client: FlaskClient) -> None:
    assert "hub_gc_pause" not in client.get("/metrics").get_data(as_text=True)
    pauses = heap.time_collections()  # as the web process does after start-up
    try:
        before = pauses.collections[2]
        gc.collect()
        text = client.get("/metrics").get_data(as_text=True)
    finally:
        gc.callbacks.remove(pauses.observe)
    assert pauses.collections[2] == before + 1
    assert f'hub_gc_collections_total{{generation="2"}} {before + 1}' in text
    longest = re.search(r'hub_gc_pause_seconds_max\{generation="2"\} (\S+)', text)
    assert longest is not None and float(longest[1]) > 0


def test_dev_helpers(client: FlaskClient) -> None:
    token = client.post("/dashboard/dev-token", json={"user": "carol"}).get_json()["token"]
    problem(client.post("/dashboard/dev-token", json={"user": "no spaces"}), 422)
    problem(client.post("/dashboard/demo-task", json={}), 401)
    response = client.post("/dashboard/demo-task", json={"steps": 3},
                           headers={"Authorization": f"Bearer {token}"})
    assert response.status_code == 202 and response.get_json()["user"] == "carol"
    assert client.get("/").status_code == 200
