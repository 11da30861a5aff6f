"""Service API keys (hashed, scoped) and user JWTs on REST calls."""

import hashlib
import hmac
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass
from functools import wraps
from typing import Any, TypeVar

from flask import current_app, g, request
from sqlalchemy import select

from events.tokens import TokenError, UserIdentity, verify
from hub.errors import fail
from models import Service, db, utcnow
from models.service import DEFAULT_SCOPES

F = TypeVar("F", bound=Callable[..., Any])

# How long a verified API key is trusted without asking the database again. The lookup
# was a quarter of `POST /api/v1/publish`'s time; with the cache a busy service costs one
# query per key per KEY_CACHE_SECONDS. The price: a key revoked from another process (the
# CLI, another hub) keeps working here for up to this long. A revocation through
# revoke_service() in this process takes effect at once.
KEY_CACHE_SECONDS = 5.0
KEY_CACHE = "hub.key_cache"


@dataclass(frozen=True)
class AuthenticatedService:
    """What a request needs of its calling service; detached from any SQL session, so it
    can be cached across requests."""

    id: int
    name: str
    scope_set: frozenset[str]


# key hash -> (service, monotonic expiry). Only active keys are cached: unknown and
# revoked keys go to the database every time, so creating a key needs no invalidation.
KeyCache = dict[str, tuple[AuthenticatedService, float]]


def _key_cache() -> KeyCache:
    return current_app.extensions.setdefault(KEY_CACHE, {})


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
    _key_cache().clear()
    return True


def _bearer() -> str | None:
    header = request.headers.get("Authorization", "")
    scheme, _, value = header.partition(" ")
    return value.strip() if scheme.lower() == "bearer" and value.strip() else None


UNAUTHORIZED = {"WWW-Authenticate": 'Bearer realm="hub"'}


def authenticate_service() -> AuthenticatedService:
    key = _bearer()
    if key is None:
        fail(401, "send an API key: Authorization: Bearer hub_<prefix>_<secret>",
             headers=UNAUTHORIZED)
    parts = key.split("_", 2)
    if len(parts) != 3 or parts[0] != "hub":
        fail(401, "malformed API key; expected hub_<prefix>_<secret>", headers=UNAUTHORIZED)
    digest = hash_key(key)
    cache = _key_cache()
    # Keyed by the full key's hash, so a cache hit proves the whole secret, not the prefix.
    cached = cache.get(digest)
    now = time.monotonic()
    if cached is not None and cached[1] > now:
        return cached[0]
    service = db.session.scalar(select(Service).where(Service.key_prefix == parts[1]))
    if service is None or not hmac.compare_digest(service.key_hash, digest):
        fail(401, "unknown API key", headers=UNAUTHORIZED)
    if not service.active:
        fail(401, "this API key was revoked", headers=UNAUTHORIZED)
    found = AuthenticatedService(service.id, service.name, service.scope_set)
    if len(cache) > 10_000:  # bounded: drop the lot rather than track ages
        cache.clear()
    cache[digest] = (found, now + KEY_CACHE_SECONDS)
    return found


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
