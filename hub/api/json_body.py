"""Strict JSON request bodies: the one parser behind every REST view, flask-smorest's
`@blp.arguments` (through `Blueprint`) and `lean_json.load` alike.

A body is refused with 400, before any schema or write sees it, when it is not UTF-8, not
JSON, nested deeper than MAX_DEPTH, holds NaN/Infinity (or a number that overflows to it)
or a lone surrogate, or is sent with a content type other than JSON. Those would otherwise
end in a RecursionError, a 500 further on, or an event no client can parse.
"""

import json
from typing import Any

import flask_smorest
from flask import Request
from marshmallow import Schema, ValidationError
from webargs import core
from webargs.flaskparser import FlaskParser, is_json_request
from werkzeug.routing import IntegerConverter

from hub.errors import Problem, fail
from models.schemas import IDEMPOTENCY_KEY, ROW_ID_MAX

# Deep enough for any real payload; far below the interpreter's recursion limit, so
# nothing downstream (marshmallow, SQL's JSON columns, publish) can overflow the stack.
MAX_DEPTH = 64

IDEMPOTENCY_HEADER = "Idempotency-Key"


class InvalidBody(ValueError):
    """The request body is not acceptable JSON; the message says why."""


def _refuse_constant(name: str) -> Any:
    raise InvalidBody(f"{name} is not JSON; send finite numbers")


def _finite_float(text: str) -> float:
    value = float(text)
    if value in (float("inf"), float("-inf")):
        raise InvalidBody(f"the number {text[:40]} is too large")
    return value


_DECODER = json.JSONDecoder(parse_constant=_refuse_constant, parse_float=_finite_float)


def _too_deep(value: Any) -> bool:
    """Iterative, so a deep document cannot overflow the stack here either."""
    stack = [(value, 1)]
    while stack:
        node, depth = stack.pop()
        if depth > MAX_DEPTH:
            return True
        if isinstance(node, dict):
            stack.extend((child, depth + 1) for child in node.values() if
                         isinstance(child, dict | list))
        elif isinstance(node, list):
            stack.extend((child, depth + 1) for child in node if isinstance(child, dict | list))
    return False


def parse(data: bytes) -> Any:
    """The JSON document in `data`, or InvalidBody."""
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise InvalidBody(f"the body is not UTF-8 (byte {exc.start})") from exc
    try:
        value = _DECODER.decode(text)
    except RecursionError as exc:
        raise InvalidBody(f"JSON nested deeper than {MAX_DEPTH} levels") from exc
    except InvalidBody:
        raise
    except ValueError as exc:
        raise InvalidBody(f"invalid JSON: {exc}") from exc
    # Both walks below cost a pass over the value; the byte counts (C speed) spare
    # every ordinary body that pass.
    if data.count(b"[") + data.count(b"{") > MAX_DEPTH and _too_deep(value):
        raise InvalidBody(f"JSON nested deeper than {MAX_DEPTH} levels")
    if (b"\\ud" in data or b"\\uD" in data) and _has_lone_surrogate(value):
        raise InvalidBody("a string holds a lone UTF-16 surrogate (\\ud800-\\udfff)")
    return value


def _has_lone_surrogate(value: Any) -> bool:
    try:
        json.dumps(value, ensure_ascii=False).encode("utf-8")
    except UnicodeEncodeError:
        return True
    return False


def request_json(request: Request) -> Any:
    """The request's JSON body; core.missing when there is none. A body of another content
    type is refused rather than ignored: the caller meant something by it."""
    data = request.get_data(cache=True)
    if not is_json_request(request):
        if data:
            fail(400, "send the body as JSON with Content-Type: application/json",
                 errors={"json": [f"unsupported content type {request.mimetype or 'none'!r}"]})
        return core.missing
    if not data:
        return core.missing
    try:
        return parse(data)
    except InvalidBody as exc:
        fail(400, str(exc), errors={"json": [str(exc)]})


class StrictParser(FlaskParser):
    """webargs' Flask parser with request_json as its only JSON reader."""

    def load_json(self, req: Request, schema: Schema) -> Any:
        return request_json(req)


class Blueprint(flask_smorest.Blueprint):
    """flask-smorest's Blueprint whose `@arguments` read JSON strictly."""

    ARGUMENTS_PARSER = StrictParser()


def idempotency_key(body_key: str | None, request: Request) -> str | None:
    """The `Idempotency-Key` header and the body's `idempotency_key` are one setting;
    both given and different is a contradiction the caller must resolve."""
    header = request.headers.get(IDEMPOTENCY_HEADER)
    if header is None:
        return body_key
    try:
        for check in IDEMPOTENCY_KEY:
            check(header)
    except ValidationError as exc:
        fail(422, "invalid Idempotency-Key header", errors={IDEMPOTENCY_HEADER: exc.messages})
    if body_key is not None and body_key != header:
        fail(422, "the Idempotency-Key header and the body's idempotency_key differ",
             errors={"idempotency_key": ["differs from the Idempotency-Key header"]})
    return header


IDEMPOTENCY_PARAMETER: dict[str, Any] = {
    "in": "header", "name": IDEMPOTENCY_HEADER, "required": False,
    "description": "the same as the body's idempotency_key (both given: they must be equal)",
    "schema": {"type": "string", "minLength": 1, "maxLength": 200, "pattern": "^[^\\x00]*$"},
}


class RowIdConverter(IntegerConverter):
    """`<rowid:name>`: a path id an id column can hold (documented as its maximum); a
    larger one is a 422, not an overflow in the database driver."""

    def __init__(self, url_map: Any, *args: Any, **kwargs: Any) -> None:
        super().__init__(url_map, *args, max=ROW_ID_MAX, **kwargs)

    def to_python(self, value: str) -> int:
        digits = value.lstrip("0")
        # The length first: int() of thousands of digits is slow, then a ValueError.
        if len(digits) > len(str(ROW_ID_MAX)) or int(digits or "0") > ROW_ID_MAX:
            raise Problem(422, "the id is too large", errors={
                "path": [f"ids are at most {ROW_ID_MAX}"]})
        return int(digits or "0")


def use_row_ids(blueprint: flask_smorest.Blueprint) -> None:
    """Make `<rowid:...>` available to the blueprint's routes (call before declaring them)."""
    blueprint.record_once(
        lambda state: state.app.url_map.converters.setdefault("rowid", RowIdConverter))
