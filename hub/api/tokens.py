"""User tokens for browsers, minted by services."""

from typing import Any

from flask import current_app
from flask.views import MethodView

from events import tokens
from events.namespace import iso_from_unix
from hub.api.json_body import Blueprint
from hub.auth import require_scope
from models.schemas import TokenCreateSchema, TokenSchema

blp = Blueprint("tokens", __name__, url_prefix="/api/v1", description="Tokens for browsers")


@blp.route("/tokens")
class Tokens(MethodView):
    @require_scope("tokens")
    @blp.arguments(TokenCreateSchema())
    @blp.response(201, TokenSchema)
    def post(self, body: dict[str, Any]) -> dict[str, str]:
        """Mint a user token (JWT) for the Socket.IO handshake"""
        token, exp = tokens.issue(current_app.config["HUB_JWT_SECRET"], body["user"],
                                  body["ttl"], body["channels"])
        return {"token": token, "expires_at": iso_from_unix(exp)}
