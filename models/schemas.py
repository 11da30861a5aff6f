"""Marshmallow schemas: REST input validation and the documented output shapes."""

from marshmallow import EXCLUDE, Schema, ValidationError, fields, validate, validates_schema

from models.service import ALL_SCOPES
from models.task import TASK_STATES

# A user id becomes part of the channel name user:<id>, so it uses channel characters.
# Fields take validator lists, not validate.And: apispec documents each validator of a list
# (lengths, patterns) in the OpenAPI document, and nothing inside an And.
USER_ID_RULES = [
    validate.Length(min=1, max=250),
    validate.Regexp(r"^[A-Za-z0-9_:.@-]+$", error="use only letters, digits and _:.@-"),
]
USER_ID = validate.And(*USER_ID_RULES)  # one callable, for code outside schemas
CHANNEL = [
    validate.Length(min=1, max=255),
    validate.Regexp(r"^[A-Za-z0-9_:.@-]+$", error="use only letters, digits and _:.@-"),
]
# PostgreSQL text cannot hold NUL; refusing it everywhere keeps both databases alike.
NO_NUL = validate.Regexp(r"^[^\x00]*$", error="NUL characters are not allowed")
IDEMPOTENCY_KEY = [validate.Length(min=1, max=200), NO_NUL]
# The largest 64-bit integer (SQLite's INTEGER, Redis counters such as history offsets).
DB_INT_MAX = 2**63 - 1
# Ids and cursors are INTEGER columns: 32 bits on PostgreSQL. Above this they can match
# nothing, and the drivers overflow on them (a 500, not an empty answer).
ROW_ID_MAX = 2**31 - 1
ROW_ID = validate.Range(min=0, max=ROW_ID_MAX)


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
    name = fields.String(required=True, validate=[validate.Length(min=1, max=200), NO_NUL])
    args = fields.Dict(load_default=dict)
    user = fields.String(validate=USER_ID_RULES, load_default=None)
    idempotency_key = fields.String(validate=IDEMPOTENCY_KEY, load_default=None)


class TaskQuerySchema(LenientQuerySchema):
    user = fields.String(validate=USER_ID_RULES)
    state = fields.String(validate=validate.OneOf(TASK_STATES))
    name = fields.String(validate=[validate.Length(min=1, max=200), NO_NUL])
    cursor = fields.Integer(validate=ROW_ID)
    limit = fields.Integer(load_default=20, validate=validate.Range(min=1, max=100))


class TaskPageSchema(Schema):
    items = fields.List(fields.Nested(TaskRecordSchema))
    next_cursor = fields.Integer(allow_none=True)


class TaskTypeSchema(Schema):
    name = fields.String()
    description = fields.String()
    args_schema = fields.Dict()


class TokenCreateSchema(StrictSchema):
    user = fields.String(required=True, validate=USER_ID_RULES)
    channels = fields.List(fields.String(validate=validate.Length(min=1, max=255)),
                           load_default=list, validate=validate.Length(max=100))
    ttl = fields.Integer(load_default=3600, validate=validate.Range(min=10, max=7 * 24 * 3600))


class TokenSchema(Schema):
    token = fields.String()
    expires_at = fields.String()


class PublishSchema(StrictSchema):
    channel = fields.String(required=True, validate=CHANNEL)
    type = fields.String(required=True, validate=[
        validate.Length(min=1, max=100),
        validate.Regexp(r"^[A-Za-z0-9_.:-]+$", error="use only letters, digits and _.:-"),
    ])
    data = fields.Raw(load_default=None)
    idempotency_key = fields.String(validate=IDEMPOTENCY_KEY, load_default=None)


class PositionSchema(Schema):
    channel = fields.String()
    offset = fields.Integer()
    epoch = fields.String()


class HistoryQuerySchema(LenientQuerySchema):
    since = fields.Integer(load_default=0, validate=validate.Range(min=0, max=DB_INT_MAX))
    epoch = fields.String(load_default=None)
    limit = fields.Integer(load_default=100, validate=validate.Range(min=1, max=1000))


class ServiceCreateSchema(StrictSchema):
    name = fields.String(required=True, validate=validate.Length(min=1, max=100))
    scopes = fields.List(fields.String(validate=validate.OneOf(ALL_SCOPES)))


class CrontabSchema(Schema):
    """A crontab entry's fields as written (for example minute "*/1", the rest "*")."""

    minute = fields.String()
    hour = fields.String()
    day_of_week = fields.String()
    day_of_month = fields.String()
    month_of_year = fields.String()


class ScheduleSchema(Schema):
    entry = fields.String()
    task = fields.String()
    kind = fields.String(metadata={"description": "interval or crontab"})
    schedule = fields.String(metadata={"description": 'readable: "every 10 s" or '
                                                      '"crontab */1 * * * *"'})
    every_seconds = fields.Float(allow_none=True)
    crontab = fields.Nested(CrontabSchema, allow_none=True)
    last_run = fields.String(allow_none=True)
    last_state = fields.String(allow_none=True)
    last_task_id = fields.String(allow_none=True)
    next_run = fields.String(allow_none=True)
    channel = fields.String()


class NotificationRecordSchema(Schema):
    id = fields.Integer()
    user = fields.String()
    title = fields.String()
    body = fields.String(allow_none=True)
    data = fields.Dict(allow_none=True)
    category = fields.String(allow_none=True)
    created_at = fields.String()
    read_at = fields.String(allow_none=True)
    read = fields.Boolean()


class NotificationContentSchema(StrictSchema):
    """What a notification says; shared by REST sends and notifications.broadcast."""

    title = fields.String(required=True, validate=[validate.Length(min=1, max=200), NO_NUL])
    body = fields.String(load_default=None, validate=[validate.Length(max=10_000), NO_NUL])
    data = fields.Dict(load_default=None)
    category = fields.String(load_default=None,
                             validate=[validate.Length(min=1, max=100), NO_NUL])


class NotificationCreateSchema(NotificationContentSchema):
    user = fields.String(validate=USER_ID_RULES, load_default=None)
    users = fields.List(fields.String(validate=USER_ID_RULES), load_default=None,
                        validate=validate.Length(min=1, max=1000))
    idempotency_key = fields.String(validate=IDEMPOTENCY_KEY, load_default=None)

    @validates_schema
    def one_audience(self, data: dict[str, object], **_: object) -> None:
        if (data.get("user") is None) == (data.get("users") is None):
            raise ValidationError("give exactly one of user or users", "user")


class NotificationIdsSchema(Schema):
    ids = fields.List(fields.Integer())


class InboxQuerySchema(LenientQuerySchema):
    unread = fields.Boolean(load_default=False)
    after_id = fields.Integer(load_default=None, validate=ROW_ID,
                              metadata={"description": "continue below this id (older items)"})
    since_id = fields.Integer(load_default=None, validate=ROW_ID,
                              metadata={"description": "only items newer than this id"})
    limit = fields.Integer(load_default=20, validate=validate.Range(min=1, max=100))


class ServiceInboxQuerySchema(InboxQuerySchema):
    user = fields.String(required=True, validate=USER_ID_RULES)


class InboxPageSchema(Schema):
    items = fields.List(fields.Nested(NotificationRecordSchema))
    unread_count = fields.Integer()
    next_cursor = fields.Integer(allow_none=True)


class MarkReadSchema(StrictSchema):
    ids = fields.List(fields.Integer(validate=validate.Range(min=1, max=ROW_ID_MAX)),
                      load_default=None,
                      validate=validate.Length(min=1, max=1000))
    all = fields.Boolean(load_default=False)

    @validates_schema
    def ids_or_all(self, data: dict[str, object], **_: object) -> None:
        if bool(data.get("ids")) == bool(data.get("all")):
            raise ValidationError("give either ids or all: true", "ids")


class UnreadCountSchema(Schema):
    unread_count = fields.Integer()
