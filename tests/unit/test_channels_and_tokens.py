import time

import jwt
import pytest

from events import tokens
from events.channels import is_valid_channel, may_subscribe

OWNERS = {"t1": "alice", "t2": "bob", "t3": ""}


def owner(task_id: str) -> str | None:
    return OWNERS.get(task_id)


@pytest.mark.parametrize("name,valid", [
    ("user:alice", True), ("public:news", True), ("a" * 255, True), ("x@y.z-_:1", True),
    ("", False), ("a" * 256, False), ("has space", False), ("slash/no", False), (None, False),
    ("ünicode", False),
])
def test_channel_names(name: object, valid: bool) -> None:
    assert is_valid_channel(name) is valid


@pytest.mark.parametrize("channel,allowed,code", [
    ("user:alice", True, ""),
    ("user:bob", False, "forbidden"),
    ("task:t1", True, ""),
    ("task:t2", False, "forbidden"),
    ("task:t3", False, "forbidden"),
    ("task:missing", False, "not_found"),
    ("schedule:nightly", True, ""),
    ("public:news", True, ""),
    ("team:blue", True, ""),
    ("team:red", False, "forbidden"),
    ("secret", False, "forbidden"),
    ("bad name", False, "invalid"),
])
def test_subscribe_rules(channel: str, allowed: bool, code: str) -> None:
    decision = may_subscribe("alice", ["team:blue", "org:*"], channel, owner)
    assert decision.allowed is allowed
    assert decision.code == code


def test_channels_claim_globs() -> None:
    assert may_subscribe("alice", ["org:*"], "org:acme:ops", owner).allowed
    assert not may_subscribe("alice", [], "org:acme", owner).allowed


SECRET = "s" * 64


def test_token_round_trip() -> None:
    token, exp = tokens.issue(SECRET, "alice", 60, ["org:*"])
    identity = tokens.verify(SECRET, token)
    assert identity.sub == "alice" and identity.channels == ("org:*",)
    assert exp - time.time() == pytest.approx(60, abs=2)


@pytest.mark.parametrize("make,message", [
    (lambda: None, "required"),
    (lambda: "not-a-jwt", "invalid"),
    (lambda: tokens.issue("other" * 10, "alice", 60)[0], "invalid"),
    (lambda: jwt.encode({"sub": "a", "aud": "hub", "exp": int(time.time()) - 5}, SECRET),
     "expired"),
    (lambda: jwt.encode({"sub": "a", "aud": "other", "exp": int(time.time()) + 60}, SECRET),
     "invalid"),
    (lambda: jwt.encode({"aud": "hub", "exp": int(time.time()) + 60}, SECRET), "invalid"),
    (lambda: jwt.encode({"sub": 5, "aud": "hub", "exp": int(time.time()) + 60}, SECRET),
     "invalid"),
    (lambda: jwt.encode({"sub": "a", "aud": "hub", "exp": int(time.time()) + 60,
                         "channels": "x"}, SECRET), "channels"),
    (lambda: jwt.encode({"sub": "a", "aud": "hub", "exp": int(time.time()) + 60},
                        SECRET, algorithm="HS512"), "invalid"),
])
def test_bad_tokens(make: object, message: str) -> None:
    with pytest.raises(tokens.TokenError, match=message):
        tokens.verify(SECRET, make())  # type: ignore[operator]
