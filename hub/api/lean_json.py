"""JSON in and out of a view without flask-smorest's per-request wrappers, for the hottest
endpoints (`POST /api/v1/publish`, `POST /api/v1/tasks`). The marshmallow schemas still
validate the body and still describe the endpoint in the OpenAPI document; the errors are
the ones `@blp.arguments` gives (400 for a body that is not JSON, 422 with field errors):
both read the body through json_body.request_json.

`@blp.arguments` and `@blp.response` parse through webargs, dump the reply through its
schema and jsonify it: in the bench, dropping them took `POST /api/v1/publish` from 0.58
to 0.55 ms of the hub's CPU per request.
"""

from http import HTTPStatus
from typing import Any

from flask import Response, json, request
from marshmallow import Schema, ValidationError
from webargs import core

from hub.api.json_body import IDEMPOTENCY_PARAMETER, request_json
from hub.errors import fail


def documented(body: type[Schema], reply: type[Schema], status: int,
               alternatives: dict[int, str] | None = None, *,
               idempotent: bool = False) -> dict[str, Any]:
    """`blp.doc(**documented(...))`: the OpenAPI entry `@blp.arguments(body)`,
    `@blp.response(status, reply)` and `@blp.alt_response(code, schema=reply,
    description=...)` for each alternative would write; `idempotent` adds the
    `Idempotency-Key` header parameter."""
    json_of = {"application/json": {"schema": reply}}
    responses: dict[str, Any] = {
        str(status): {"description": HTTPStatus(status).phrase, "content": json_of}}
    for code, description in (alternatives or {}).items():
        responses[str(code)] = {"description": description, "content": json_of}
    responses["422"] = {"$ref": "#/components/responses/UNPROCESSABLE_ENTITY"}
    entry: dict[str, Any] = {
        "requestBody": {"required": True, "content": {"application/json": {"schema": body}}},
        "responses": responses,
    }
    if idempotent:
        entry["parameters"] = [IDEMPOTENCY_PARAMETER]
    return entry


def load(schema: Schema) -> dict[str, Any]:
    """The request's JSON body through `schema`; no body counts as {}."""
    raw = request_json(request)
    if raw is core.missing:
        raw = {}
    try:
        return schema.load(raw)
    except ValidationError as exc:
        fail(422, "the request has invalid fields; see errors",
             errors=exc.normalized_messages())


def reply(value: Any, status: int) -> Response:
    """As jsonify writes it (sorted keys, compact), with a status."""
    return Response(json.dumps(value, separators=(",", ":")), status, mimetype="application/json")
