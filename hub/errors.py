"""Every error in one shape: application/problem+json (RFC 9457), never a stack trace."""

import logging
from typing import Any, NoReturn

import redis
import sqlalchemy.exc
from flask import Flask, Response, json
from kombu.exceptions import OperationalError as BrokerError
from werkzeug.exceptions import HTTPException

log = logging.getLogger(__name__)

PROBLEM = "application/problem+json"


class Problem(HTTPException):
    """An HTTP error with a person-readable detail and optional field errors."""

    def __init__(self, status: int, detail: str, errors: dict[str, Any] | None = None,
                 headers: dict[str, str] | None = None) -> None:
        super().__init__(description=detail)
        self.code = status
        self.errors = errors
        self.extra_headers = headers or {}


def fail(status: int, detail: str, errors: dict[str, Any] | None = None,
         headers: dict[str, str] | None = None) -> NoReturn:
    raise Problem(status, detail, errors, headers)


def problem_response(status: int, title: str, detail: str,
                     errors: dict[str, Any] | None = None,
                     headers: dict[str, str] | None = None) -> Response:
    body: dict[str, Any] = {"type": "about:blank", "title": title, "status": status,
                            "detail": detail}
    if errors:
        body["errors"] = errors
    response = Response(json.dumps(body), status=status, mimetype=PROBLEM)
    for name, value in (headers or {}).items():
        response.headers[name] = value
    return response


def _field_errors(exc: HTTPException) -> dict[str, Any] | None:
    """webargs nests messages by location ({"json": {"name": [...]}}); callers want fields."""
    data = getattr(exc, "data", None) or {}
    messages = data.get("messages") or data.get("errors")
    if not isinstance(messages, dict):
        return None
    flat: dict[str, Any] = {}
    for location, fields in messages.items():
        if isinstance(fields, dict) and location in ("json", "query", "path", "form", "headers"):
            flat.update(fields)
        else:
            flat[location] = fields
    return flat


def handle_http(exc: HTTPException) -> Response:
    status = exc.code or 500
    errors = exc.errors if isinstance(exc, Problem) else _field_errors(exc)
    detail = exc.description or ""
    if status == 422 and errors and not isinstance(exc, Problem):
        detail = "the request has invalid fields; see errors"
    headers = dict(exc.extra_headers) if isinstance(exc, Problem) else {}
    if status == 405 and exc.get_response().headers.get("Allow"):
        headers["Allow"] = exc.get_response().headers["Allow"]
    return problem_response(status, exc.name, detail, errors, headers)


def handle_unavailable(exc: Exception) -> Response:
    log.warning("dependency unavailable: %s", exc)
    return problem_response(503, "Service Unavailable",
                            "a backing service (Redis, broker or database) is unavailable; "
                            "retry shortly", headers={"Retry-After": "2"})


def handle_unexpected(exc: Exception) -> Response:
    log.exception("unhandled error")
    return problem_response(500, "Internal Server Error",
                            "something went wrong on our side; it has been logged")


def init_app(app: Flask) -> None:
    app.register_error_handler(HTTPException, handle_http)
    for unavailable in (redis.RedisError, BrokerError, sqlalchemy.exc.OperationalError):
        app.register_error_handler(unavailable, handle_unavailable)
    app.register_error_handler(Exception, handle_unexpected)
