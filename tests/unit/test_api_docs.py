"""The API documentation: Swagger UI loads with every asset, the OpenAPI document has the
bearer schemes and every endpoint, and the socket protocol is served beside it."""

import re

from flask.testing import FlaskClient

METHODS = {"get", "post", "put", "patch", "delete"}


def test_swagger_ui_and_every_asset_it_references_load(client: FlaskClient) -> None:
    page = client.get("/api/docs")
    assert page.status_code == 200
    html = page.get_data(as_text=True)
    assets = re.findall(r'(?:src|href)="([^"]+)"', html)
    assert any(a.endswith("swagger-ui-bundle.js") for a in assets), assets
    for asset in assets:
        response = client.get(asset)
        assert response.status_code == 200, f"{asset}: {response.status_code}"
        response.close()
    assert "/api/openapi.json" in html


def test_openapi_has_bearer_schemes_on_every_protected_operation(client: FlaskClient) -> None:
    doc = client.get("/api/openapi.json").get_json()
    schemes = doc["components"]["securitySchemes"]
    assert schemes["serviceKey"] == {
        "type": "http", "scheme": "bearer", "bearerFormat": "hub_<prefix>_<secret>",
        "description": schemes["serviceKey"]["description"]}
    assert schemes["userToken"]["scheme"] == "bearer"
    assert schemes["userToken"]["bearerFormat"] == "JWT"
    for path, item in doc["paths"].items():
        for method, operation in item.items():
            if method not in METHODS:
                continue  # path-level "parameters"
            if path.startswith("/api/v1/me/"):
                assert operation["security"] == [{"userToken": []}], (method, path)
            elif path.startswith("/api/v1/"):
                assert operation["security"] == [{"serviceKey": []}], (method, path)
            else:
                assert operation["security"] == [], (method, path)


def test_openapi_lists_health_metrics_and_the_socket_protocol(client: FlaskClient) -> None:
    doc = client.get("/api/openapi.json").get_json()
    for path in ("/healthz", "/readyz", "/metrics", "/api/docs/socket"):
        assert "200" in doc["paths"][path]["get"]["responses"], path
    assert "503" in doc["paths"]["/readyz"]["get"]["responses"]
    assert "text/plain" in doc["paths"]["/metrics"]["get"]["responses"]["200"]["content"]
    assert "(/api/docs/socket)" in doc["info"]["description"]
    # Every route the app serves under /api/v1 is documented.
    served = {re.sub(r"<(?:\w+:)?(\w+)>", r"{\1}", rule.rule)
              for rule in client.application.url_map.iter_rules()
              if rule.rule.startswith("/api/v1/")}
    assert served <= set(doc["paths"]), served - set(doc["paths"])


def test_socket_protocol_is_served_as_markdown(client: FlaskClient) -> None:
    response = client.get("/api/docs/socket")
    assert response.status_code == 200
    assert response.mimetype == "text/markdown"
    text = response.get_data(as_text=True)
    response.close()
    for needle in ("subscribe", "unsubscribe", "notifications.read", "refresh",
                   "tasks.cancel", "connection.closing", "token.expiring", "rate_limited",
                   "unavailable", '"ok": false'):
        assert needle in text, needle
