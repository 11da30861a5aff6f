"""User tokens: HS256 JWTs with aud=hub, sub and exp, and an optional channels claim."""

import time
from dataclasses import dataclass, field

import jwt

AUDIENCE = "hub"
ALGORITHM = "HS256"


class TokenError(Exception):
    """The token is missing, malformed, expired or signed with another secret."""


@dataclass(frozen=True)
class UserIdentity:
    sub: str
    exp: int
    channels: tuple[str, ...] = field(default_factory=tuple)


def issue(secret: str, sub: str, ttl: int, channels: list[str] | None = None) -> tuple[str, int]:
    """Sign a token for a user; returns the token and its expiry (unix seconds)."""
    exp = int(time.time()) + ttl
    claims: dict[str, object] = {"sub": sub, "aud": AUDIENCE, "exp": exp, "iat": int(time.time())}
    if channels:
        claims["channels"] = list(channels)
    return jwt.encode(claims, secret, algorithm=ALGORITHM), exp


def verify(secret: str, token: object) -> UserIdentity:
    if not isinstance(token, str) or not token:
        raise TokenError("a token is required")
    try:
        claims = jwt.decode(
            token, secret, algorithms=[ALGORITHM], audience=AUDIENCE,
            options={"require": ["sub", "exp", "aud"]},
        )
    except jwt.ExpiredSignatureError as exc:
        raise TokenError("the token has expired") from exc
    except jwt.PyJWTError as exc:
        raise TokenError(f"invalid token: {exc}") from exc
    sub = claims.get("sub")
    channels = claims.get("channels") or []
    if not isinstance(sub, str) or not sub or len(sub) > 250:
        raise TokenError("the token's sub must be a user id string")
    if not isinstance(channels, list) or not all(isinstance(c, str) for c in channels):
        raise TokenError("the token's channels claim must be a list of patterns")
    return UserIdentity(sub=sub, exp=int(claims["exp"]), channels=tuple(channels))
