"""What the OpenAPI document adds to flask-smorest's defaults: the two bearer schemes (so
Swagger UI's Authorize sends a key or a token), the health endpoints (a plain Flask
blueprint smorest cannot see), and the socket protocol's description served beside it."""

from pathlib import Path
from typing import Any

from apispec import BasePlugin
from flask import Blueprint, Flask, Response, send_file
from flask_smorest import Api

SOCKET_DOC = Path(__file__).resolve().parent.parent / "static" / "socket-protocol.md"
SOCKET_DOC_PATH = "/api/docs/socket"
USER_PATHS = "/api/v1/me/"  # require_user views: a user's JWT, not a service key
SERVICE_PATHS = "/api/v1/"  # require_scope views: a service key with the named scope

DESCRIPTION = f"""\
Hub's REST API. Services authenticate with an API key (`Authorization: Bearer
hub_<prefix>_<secret>`, from `flask --app hub services create NAME`) carrying scopes
(`tasks`, `notify`, `publish`, `tokens`, `admin`); the `/api/v1/me/...` endpoints take a
user's JWT instead (from `POST /api/v1/tokens`). In Swagger UI, press **Authorize** and
paste the key or the token (without `Bearer`).

Real-time events reach browsers over Socket.IO: the events, payloads, acknowledgements
and error codes are described in [the socket protocol]({SOCKET_DOC_PATH}) (Markdown)."""

SECURITY_SCHEMES: dict[str, dict[str, str]] = {
    "serviceKey": {
        "type": "http", "scheme": "bearer", "bearerFormat": "hub_<prefix>_<secret>",
        "description": "A service's API key; each operation names the scope it needs.",
    },
    "userToken": {
        "type": "http", "scheme": "bearer", "bearerFormat": "JWT",
        "description": "A user's JWT (HS256, aud hub), e.g. from POST /api/v1/tokens.",
    },
}

bp = Blueprint("api_docs", __name__)


@bp.get(SOCKET_DOC_PATH)
def socket_protocol() -> Response:
    return send_file(SOCKET_DOC, mimetype="text/markdown", max_age=300)


class BearerPlugin(BasePlugin):
    """Marks each REST operation with the credential its view checks (hub.auth)."""

    def operation_helper(self, path: str | None = None,
                         operations: dict[str, Any] | None = None, **_: Any) -> None:
        if not path or not operations or not path.startswith(SERVICE_PATHS):
            return
        scheme = "userToken" if path.startswith(USER_PATHS) else "serviceKey"
        for operation in operations.values():
            operation.setdefault("security", [{scheme: []}])


def spec_kwargs() -> dict[str, Any]:
    return {"extra_plugins": [BearerPlugin()], "info": {"description": DESCRIPTION}}


def _json(description: str, schema: dict[str, Any]) -> dict[str, Any]:
    return {"description": description, "content": {"application/json": {"schema": schema}}}


READINESS = {
    "type": "object",
    "properties": {
        "status": {"type": "string", "enum": ["ready", "unavailable"]},
        "checks": {"type": "object", "additionalProperties": {"type": "boolean"},
                   "example": {"database": True, "redis": True, "listener": True}},
    },
}

OPERATIONS: dict[str, dict[str, Any]] = {
    "health.healthz": {
        "tags": ["health"], "summary": "Liveness: the process answers",
        "responses": {"200": _json("alive", {
            "type": "object", "properties": {"status": {"type": "string", "enum": ["ok"]}}})},
    },
    "health.readyz": {
        "tags": ["health"], "summary": "Readiness: the database, Redis and (on the web role) "
                                       "the pub/sub listener answer",
        "responses": {"200": _json("ready", READINESS),
                      "503": _json("a dependency check failed", READINESS)},
    },
    "health.metrics": {
        "tags": ["health"], "summary": "Prometheus metrics of this process",
        "responses": {"200": {"description": "Prometheus text exposition format",
                              "content": {"text/plain": {"schema": {"type": "string"}}}}},
    },
    "api_docs.socket_protocol": {
        "tags": ["docs"], "summary": "The Socket.IO protocol: events, payloads, acks, "
                                     "error codes",
        "responses": {"200": {"description": "Markdown",
                              "content": {"text/markdown": {"schema": {"type": "string"}}}}},
    },
}


def init_app(app: Flask, api: Api) -> None:
    """After every blueprint is registered: add the schemes and the plain Flask endpoints."""
    app.register_blueprint(bp)
    for name, scheme in SECURITY_SCHEMES.items():
        api.spec.components.security_scheme(name, scheme)
    api.spec.tag({"name": "health", "description": "Liveness, readiness and metrics "
                                                   "(no credentials: they reveal no data)"})
    api.spec.tag({"name": "docs", "description": "Documentation beside this one"})
    for rule in app.url_map.iter_rules():
        operation = OPERATIONS.get(rule.endpoint)
        if operation is not None:
            # No credentials needed: an empty security list says so to Swagger UI.
            api.spec.path(rule=rule, operations={"get": {**operation, "security": []}})
