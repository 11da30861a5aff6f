"""Marshmallow schemas: REST input validation and the documented output shapes."""

from marshmallow import EXCLUDE, Schema, fields, validate

from models.service import ALL_SCOPES
from models.task import TASK_STATES

# A user id becomes part of the channel name user:<id>, so it uses channel characters.
USER_ID = validate.And(
    validate.Length(min=1, max=250),
    validate.Regexp(r"^[A-Za-z0-9_:.@-]+$", error="use only letters, digits and _:.@-"),
)
CHANNEL = validate.And(
    validate.Length(min=1, max=255),
    validate.Regexp(r"^[A-Za-z0-9_:.@-]+$", error="use only letters, digits and _:.@-"),
)
IDEMPOTENCY_KEY = validate.Length(min=1, max=200)


class StrictSchema(Schema):
    """Unknown fields are an error a caller can act on, not something silently dropped."""


class LenientQuerySchema(Schema):
    class Meta:
        unknown = EXCLUDE


class ProgressSchema(Schema):
    current = fields.Integer()
    total = fields.Integer(allow_none=True)
    percent = fields.Float()
    message = fields.String(allow_none=True)


class TaskRecordSchema(Schema):
    id = fields.String()
    name = fields.String()
    state = fields.String(metadata={"enum": list(TASK_STATES)})
    user = fields.String(allow_none=True)
    args = fields.Dict()
    progress = fields.Nested(ProgressSchema)
    result = fields.Raw(allow_none=True)
    error = fields.Dict(allow_none=True)
    attempts = fields.Integer()
    created_at = fields.String()
    started_at = fields.String(allow_none=True)
    finished_at = fields.String(allow_none=True)
    channel = fields.String()


class TaskCreateSchema(StrictSchema):
    name = fields.String(required=True, validate=validate.Length(min=1, max=200))
    args = fields.Dict(load_default=dict)
    user = fields.String(validate=USER_ID, load_default=None)
    idempotency_key = fields.String(validate=IDEMPOTENCY_KEY, load_default=None)


class TaskQuerySchema(LenientQuerySchema):
    user = fields.String(validate=USER_ID)
    state = fields.String(validate=validate.OneOf(TASK_STATES))
    name = fields.String(validate=validate.Length(min=1, max=200))
    cursor = fields.Integer(validate=validate.Range(min=0))
    limit = fields.Integer(load_default=20, validate=validate.Range(min=1, max=100))


class TaskPageSchema(Schema):
    items = fields.List(fields.Nested(TaskRecordSchema))
    next_cursor = fields.Integer(allow_none=True)


class TaskTypeSchema(Schema):
    name = fields.String()
    description = fields.String()
    args_schema = fields.Dict()


class TokenCreateSchema(StrictSchema):
    user = fields.String(required=True, validate=USER_ID)
    channels = fields.List(fields.String(validate=validate.Length(min=1, max=255)),
                           load_default=list, validate=validate.Length(max=100))
    ttl = fields.Integer(load_default=3600, validate=validate.Range(min=10, max=7 * 24 * 3600))


class TokenSchema(Schema):
    token = fields.String()
    expires_at = fields.String()


class PublishSchema(StrictSchema):
    channel = fields.String(required=True, validate=CHANNEL)
    type = fields.String(required=True, validate=validate.And(
        validate.Length(min=1, max=100),
        validate.Regexp(r"^[A-Za-z0-9_.:-]+$", error="use only letters, digits and _.:-"),
    ))
    data = fields.Raw(load_default=None)
    idempotency_key = fields.String(validate=IDEMPOTENCY_KEY, load_default=None)


class PositionSchema(Schema):
    channel = fields.String()
    offset = fields.Integer()
    epoch = fields.String()


class HistoryQuerySchema(LenientQuerySchema):
    since = fields.Integer(load_default=0, validate=validate.Range(min=0))
    epoch = fields.String(load_default=None)
    limit = fields.Integer(load_default=100, validate=validate.Range(min=1, max=1000))


class ServiceCreateSchema(StrictSchema):
    name = fields.String(required=True, validate=validate.Length(min=1, max=100))
    scopes = fields.List(fields.String(validate=validate.OneOf(ALL_SCOPES)))


class ScheduleSchema(Schema):
    entry = fields.String()
    task = fields.String()
    schedule = fields.String()
    every_seconds = fields.Float(allow_none=True)
    last_run = fields.String(allow_none=True)
    last_state = fields.String(allow_none=True)
    last_task_id = fields.String(allow_none=True)
    next_run = fields.String(allow_none=True)
    channel = fields.String()
