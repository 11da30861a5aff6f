"""Hub's application/problem+json errors as typed exceptions."""

from typing import Any

import requests


class HubError(Exception):
    """An error answer from Hub (RFC 9457 problem): `errors` holds field errors for validation."""

    status: int | None = None

    def __init__(self, status: int | None, title: str, detail: str = "",
                 errors: dict[str, Any] | None = None, *, type: str = "about:blank",
                 request_id: str | None = None, retry_after: float | None = None) -> None:
        super().__init__(f"{status} {title}: {detail}" if status else f"{title}: {detail}")
        self.status = status
        self.title = title
        self.detail = detail
        self.errors = errors or {}
        self.type = type
        self.request_id = request_id
        self.retry_after = retry_after


class TransportError(HubError):
    """Hub could not be reached (connection refused, reset, timed out) after every retry."""


class BadRequest(HubError):
    status = 400


class Unauthorized(HubError):
    status = 401


class Forbidden(HubError):
    status = 403


class NotFound(HubError):
    status = 404


class Conflict(HubError):
    status = 409


class PayloadTooLarge(HubError):
    status = 413


class ValidationFailed(HubError):
    status = 422


class RateLimited(HubError):
    status = 429


class Unavailable(HubError):
    status = 503


BY_STATUS: dict[int, type[HubError]] = {
    cls.status: cls for cls in (BadRequest, Unauthorized, Forbidden, NotFound, Conflict,
                                PayloadTooLarge, ValidationFailed, RateLimited, Unavailable)
    if cls.status is not None
}


def retry_after(response: requests.Response) -> float | None:
    """Retry-After in seconds (Hub sends delta-seconds; an HTTP date counts as absent)."""
    value = response.headers.get("Retry-After", "").strip()
    try:
        return max(0.0, float(value))
    except ValueError:
        return None


def from_response(response: requests.Response) -> HubError:
    """The typed exception for an error response; a body that is not a problem still maps."""
    try:
        body = response.json()
    except ValueError:
        body = None
    if not isinstance(body, dict):
        body = {}
    errors = body.get("errors")
    cls = BY_STATUS.get(response.status_code, HubError)
    return cls(response.status_code, str(body.get("title") or response.reason or "error"),
               str(body.get("detail") or ""), errors if isinstance(errors, dict) else None,
               type=str(body.get("type") or "about:blank"),
               request_id=response.headers.get("X-Request-Id"),
               retry_after=retry_after(response))
