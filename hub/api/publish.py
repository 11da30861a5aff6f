"""Service publications to any channel, and channel history."""

import json
from typing import Any

from flask import Response, current_app, g, request
from flask.views import MethodView

from events import Position, PublishError, current_publisher
from events.channels import is_reserved_type, is_valid_channel
from hub.api import lean_json
from hub.api.json_body import Blueprint, idempotency_key
from hub.auth import require_scope
from hub.errors import fail
from models.schemas import HistoryQuerySchema, PositionSchema, PublishSchema

blp = Blueprint("publish", __name__, url_prefix="/api/v1",
                description="Publish to channels and read their history")

IDEMPOTENCY_TTL = 24 * 3600
PENDING_TTL = 30


def _publish(body: dict[str, Any]) -> dict[str, Any]:
    try:
        envelope = current_publisher().publish(body["channel"], body["type"], body["data"])
    except PublishError as exc:
        fail(413 if exc.code == "too_large" else 422, str(exc))
    return {"channel": envelope["channel"], "offset": envelope["offset"],
            "epoch": envelope["epoch"]}


PUBLISH = PublishSchema()


@blp.route("/publish")
class Publish(MethodView):
    @blp.doc(**lean_json.documented(PublishSchema, PositionSchema, 202, idempotent=True))
    @require_scope("publish")
    def post(self) -> Response:
        """Publish to a channel"""
        # The hottest endpoint: its JSON goes through lean_json, not flask-smorest's wrappers.
        return lean_json.reply(self.publish(lean_json.load(PUBLISH)), 202)

    @staticmethod
    def publish(body: dict[str, Any]) -> dict[str, Any]:
        if is_reserved_type(body["type"]):
            fail(422, "reserved event type", errors={
                "type": ["task.*, notification.*, schedule.* and presence.* are Hub's own"]})
        key = idempotency_key(body["idempotency_key"], request)
        if key is None:
            return _publish(body)
        client = current_app.extensions["hub.redis"]
        slot = f"{current_app.config['HUB_REDIS_PREFIX']}:idem:publish:{g.service.id}:{key}"
        # A short claim: if this request dies (or Redis stalls and the delete below never
        # lands), a retry with the same key may go ahead once the claim has expired.
        if not client.set(slot, "pending", nx=True, ex=PENDING_TTL):
            earlier = client.get(slot)
            if earlier in (None, b"pending"):
                fail(409, "a publication with this idempotency key is in progress; retry")
            return json.loads(earlier)
        try:
            position = _publish(body)
        except Exception:
            client.delete(slot)
            raise
        client.set(slot, json.dumps(position), ex=IDEMPOTENCY_TTL)
        return position


@blp.route("/channels/<string:channel>/history")
class History(MethodView):
    @require_scope("publish")
    @blp.arguments(HistoryQuerySchema(), location="query")
    @blp.response(200)
    def get(self, query: dict[str, Any], channel: str) -> dict[str, Any]:
        """Publications still in a channel's history after `since`"""
        if not is_valid_channel(channel):
            fail(422, "invalid channel name", errors={
                "channel": ["1-255 characters of A-Za-z0-9_:.@-"]})
        publisher = current_publisher()
        epoch = query["epoch"] or publisher.recover(channel, None).position.epoch
        recovery = publisher.recover(channel, Position(query["since"], epoch), query["limit"])
        return {"channel": channel, "offset": recovery.position.offset,
                "epoch": recovery.position.epoch, "recovered": recovery.recovered,
                "publications": recovery.publications}
