"""Service API keys (hashed, scoped) and user JWTs on REST calls."""

import hashlib
import hmac
import secrets
from collections.abc import Callable
from functools import wraps
from typing import Any, TypeVar

from flask import current_app, g, request
from sqlalchemy import select

from events.tokens import TokenError, UserIdentity, verify
from hub.errors import fail
from models import Service, db, utcnow
from models.service import DEFAULT_SCOPES

F = TypeVar("F", bound=Callable[..., Any])


def hash_key(key: str) -> str:
    # Keys carry >= 256 bits of randomness, so a fast hash is enough; no salt needed.
    return hashlib.sha256(key.encode()).hexdigest()


def create_service(name: str, scopes: list[str] | None = None) -> tuple[Service, str]:
    """Create a service and its key; the plain key exists only in the return value."""
    prefix = secrets.token_hex(4)
    key = f"hub_{prefix}_{secrets.token_urlsafe(32)}"
    service = Service(name=name, key_prefix=prefix, key_hash=hash_key(key),
                      scopes=",".join(scopes or DEFAULT_SCOPES))
    db.session.add(service)
    db.session.commit()
    return service, key


def revoke_service(name: str) -> bool:
    service = db.session.scalar(select(Service).where(Service.name == name))
    if service is None or not service.active:
        return False
    service.revoked_at = utcnow()
    db.session.commit()
    return True


def _bearer() -> str | None:
    header = request.headers.get("Authorization", "")
    scheme, _, value = header.partition(" ")
    return value.strip() if scheme.lower() == "bearer" and value.strip() else None


UNAUTHORIZED = {"WWW-Authenticate": 'Bearer realm="hub"'}


def authenticate_service() -> Service:
    key = _bearer()
    if key is None:
        fail(401, "send an API key: Authorization: Bearer hub_<prefix>_<secret>",
             headers=UNAUTHORIZED)
    parts = key.split("_", 2)
    if len(parts) != 3 or parts[0] != "hub":
        fail(401, "malformed API key; expected hub_<prefix>_<secret>", headers=UNAUTHORIZED)
    service = db.session.scalar(select(Service).where(Service.key_prefix == parts[1]))
    if service is None or not hmac.compare_digest(service.key_hash, hash_key(key)):
        fail(401, "unknown API key", headers=UNAUTHORIZED)
    if not service.active:
        fail(401, "this API key was revoked", headers=UNAUTHORIZED)
    return service


def require_scope(scope: str) -> Callable[[F], F]:
    """Authenticate the calling service and require one scope (admin implies all)."""

    def decorator(view: F) -> F:
        @wraps(view)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            service = authenticate_service()
            if scope not in service.scope_set and "admin" not in service.scope_set:
                fail(403, f"this API key lacks the {scope!r} scope")
            g.service = service
            current_app.extensions["hub.rate_limiter"].check(f"svc:{service.id}")
            return view(*args, **kwargs)

        return wrapper  # type: ignore[return-value]

    return decorator


def require_user(view: F) -> F:
    """Authenticate a browser user by its JWT (Authorization: Bearer <jwt>)."""

    @wraps(view)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        token = _bearer()
        try:
            g.user = verify(current_app.config["HUB_JWT_SECRET"], token)
        except TokenError as exc:
            fail(401, str(exc), headers=UNAUTHORIZED)
        current_app.extensions["hub.rate_limiter"].check(f"user:{g.user.sub}")
        return view(*args, **kwargs)

    return wrapper  # type: ignore[return-value]


def current_user() -> UserIdentity:
    return g.user
