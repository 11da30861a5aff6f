"""A typed sync client for Hub's REST API (/api/v1): API key, timeouts, retries, typed errors."""

import random
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from typing import Any, cast

import requests

from hub_client import errors
from hub_client.types import (
    Health,
    History,
    InboxPage,
    Position,
    Readiness,
    Schedule,
    Task,
    TaskPage,
    TaskType,
    Token,
)
from hub_client.watch import TaskWatch

# Answers that mean "nothing was done, try again": gateway trouble, overload, rate limit.
RETRY_STATUSES = frozenset({429, 502, 503, 504})
MAX_RETRY_AFTER = 60.0  # seconds; a longer Retry-After is capped rather than obeyed


class HubClient:
    """Talks to one Hub with one service API key. Thread-compatible, not thread-safe: use one
    client per thread (it holds a requests.Session).

    Every call retries `retries` times on connection errors, timeouts, 429, 502, 503 and 504,
    waiting `backoff * 2**attempt` seconds (jittered, at most `max_backoff`) or the answer's
    Retry-After. Calls that create something (submit, notify, publish) send one idempotency
    key, made before the first attempt, with every attempt: a retry never creates twice.
    """

    def __init__(self, base_url: str, api_key: str, timeout: float = 10.0, retries: int = 3,
                 backoff: float = 0.25, max_backoff: float = 8.0,
                 session: requests.Session | None = None) -> None:
        self.base_url = base_url.rstrip("/")
        self.api_key = api_key
        self.timeout = timeout
        self.retries = retries
        self.backoff = backoff
        self.max_backoff = max_backoff
        self.session = session or requests.Session()
        self.session.headers["Authorization"] = f"Bearer {api_key}"
        self.session.headers.setdefault("Accept", "application/json")
        self.sleep: Callable[[float], None] = time.sleep  # swapped out by tests that count waits

    # -- plumbing ------------------------------------------------------------------

    def __enter__(self) -> "HubClient":
        return self

    def __exit__(self, *_: object) -> None:
        self.close()

    def close(self) -> None:
        self.session.close()

    def delay(self, attempt: int, response: requests.Response | None = None) -> float:
        """Seconds to wait before retry number `attempt + 1`."""
        if response is not None:
            given = errors.retry_after(response)
            if given is not None:
                return min(given, MAX_RETRY_AFTER)
        return min(self.max_backoff, self.backoff * 2.0 ** attempt) * random.uniform(0.5, 1.0)

    def request(self, method: str, path: str, *, json: Any = None,
                params: dict[str, Any] | None = None, idempotency_key: str | None = None,
                retry_conflict: bool = False) -> requests.Response:
        """One logical call with retries; raises a HubError subclass for an error answer.
        `retry_conflict`: a 409 means "the first attempt with this key is still in progress"."""
        headers = {"Idempotency-Key": idempotency_key} if idempotency_key else None
        query = {k: v for k, v in (params or {}).items() if v is not None}
        url = self.base_url + path
        for attempt in range(self.retries + 1):
            last = attempt == self.retries
            try:
                response = self.session.request(method, url, json=json, params=query,
                                                headers=headers, timeout=self.timeout)
            except (requests.ConnectionError, requests.Timeout) as exc:
                if last:
                    raise errors.TransportError(None, type(exc).__name__, str(exc)) from exc
                self.sleep(self.delay(attempt))
                continue
            retryable = response.status_code in RETRY_STATUSES or (
                retry_conflict and response.status_code == 409)
            if response.status_code < 400 or not retryable or last:
                break
            self.sleep(self.delay(attempt, response))
        if response.status_code >= 400:
            raise errors.from_response(response)
        return response

    def call(self, method: str, path: str, **kw: Any) -> Any:
        return self.request(method, path, **kw).json()

    def created(self, path: str, body: dict[str, Any], key: str | None,
                retry_conflict: bool = False) -> Any:
        """POST something new under one idempotency key for every attempt."""
        key = key or str(uuid.uuid4())
        return self.call("POST", path, json={**body, "idempotency_key": key},
                         idempotency_key=key, retry_conflict=retry_conflict)

    # -- tasks -----------------------------------------------------------------------

    def submit(self, name: str, args: dict[str, Any] | None = None, *, user: str | None = None,
               idempotency_key: str | None = None) -> Task:
        """Trigger a task; the same key returns the first task instead of a second one."""
        body: dict[str, Any] = {"name": name, "args": args or {}}
        if user is not None:
            body["user"] = user
        return cast(Task, self.created("/api/v1/tasks", body, idempotency_key))

    def get_task(self, task_id: str) -> Task:
        return cast(Task, self.call("GET", f"/api/v1/tasks/{task_id}"))

    def list_tasks(self, *, user: str | None = None, state: str | None = None,
                   name: str | None = None, cursor: int | None = None,
                   limit: int = 20) -> TaskPage:
        """One page, newest first; pass `next_cursor` back as `cursor` for the next."""
        params = {"user": user, "state": state, "name": name, "cursor": cursor, "limit": limit}
        return cast(TaskPage, self.call("GET", "/api/v1/tasks", params=params))

    def iter_tasks(self, *, user: str | None = None, state: str | None = None,
                   name: str | None = None, page_size: int = 100) -> Iterator[Task]:
        """Every matching task, newest first, fetched a page at a time."""
        cursor: int | None = None
        while True:
            page = self.list_tasks(user=user, state=state, name=name, cursor=cursor,
                                   limit=page_size)
            yield from page["items"]
            cursor = page["next_cursor"]
            if cursor is None:
                return

    def cancel(self, task_id: str) -> Task:
        """Cancel a task; Conflict if it already ended (unless a retry of ours ended it)."""
        try:
            return cast(Task, self.call("POST", f"/api/v1/tasks/{task_id}/cancel"))
        except errors.Conflict:
            task = self.get_task(task_id)
            if task["state"] == "cancelled":  # an earlier attempt of this call got through
                return task
            raise

    def task_types(self) -> list[TaskType]:
        return cast(list[TaskType], self.call("GET", "/api/v1/task-types"))

    # -- notifications, publications, tokens -------------------------------------------

    def notify(self, users: str | Sequence[str], title: str, *, body: str | None = None,
               data: dict[str, Any] | None = None, category: str | None = None,
               idempotency_key: str | None = None) -> list[int]:
        """Notify one user (a str) or many (up to 1000); returns the notification ids."""
        payload: dict[str, Any] = {"title": title, "body": body, "data": data,
                                   "category": category}
        payload = {k: v for k, v in payload.items() if v is not None}
        if isinstance(users, str):
            payload["user"] = users
        else:
            payload["users"] = list(users)
        answer = self.created("/api/v1/notifications", payload, idempotency_key)
        return cast(list[int], answer["ids"])

    def inbox(self, user: str, *, unread: bool = False, after_id: int | None = None,
              since_id: int | None = None, limit: int = 20) -> InboxPage:
        """A user's notifications, newest first; `next_cursor` is the next page's after_id."""
        params = {"user": user, "unread": "true" if unread else "false",
                  "after_id": after_id, "since_id": since_id, "limit": limit}
        return cast(InboxPage, self.call("GET", "/api/v1/notifications", params=params))

    def publish(self, channel: str, type: str, data: Any = None, *,
                idempotency_key: str | None = None) -> Position:
        """Publish to a channel; returns where the publication landed."""
        body = {"channel": channel, "type": type, "data": data}
        return cast(Position, self.created("/api/v1/publish", body, idempotency_key,
                                           retry_conflict=True))

    def history(self, channel: str, *, since: int = 0, epoch: str | None = None,
                limit: int = 100) -> History:
        """Publications still in the channel's history after offset `since` (of `epoch`)."""
        params = {"since": since, "epoch": epoch, "limit": limit}
        return cast(History, self.call("GET", f"/api/v1/channels/{channel}/history",
                                       params=params))

    def token(self, user: str, *, channels: Sequence[str] = (), ttl: int = 3600) -> Token:
        """Mint a user JWT for a browser's (or watch()'s) Socket.IO handshake."""
        body = {"user": user, "channels": list(channels), "ttl": ttl}
        return cast(Token, self.call("POST", "/api/v1/tokens", json=body))

    def schedules(self) -> list[Schedule]:
        return cast(list[Schedule], self.call("GET", "/api/v1/schedules"))

    # -- health -------------------------------------------------------------------

    def health(self) -> Health:
        return cast(Health, self.call("GET", "/healthz"))

    def ready(self) -> Readiness:
        """Readiness with its checks; a not-ready hub is an answer here, not an error."""
        response = self.session.get(self.base_url + "/readyz", timeout=self.timeout)
        if response.status_code not in (200, 503):
            raise errors.from_response(response)
        return cast(Readiness, response.json())

    # -- watching --------------------------------------------------------------------

    def watch(self, task_id: str, timeout: float | None = None) -> TaskWatch:
        """The task's publications in offset order until it ends, recovering across
        disconnects (see hub_client.watch for the scopes it needs)."""
        return TaskWatch(self, task_id, timeout)
