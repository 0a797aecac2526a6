"""The page's request types in the WebSocket protocol: parsed into requests, or refused with
an error code, never anything else."""

from __future__ import annotations

import orjson
import pytest
from hypothesis import given
from hypothesis import strategies as st

from services.stream import protocol


def parse(**obj):
    return protocol.parse(orjson.dumps(obj).decode())


def test_the_page_requests_parse_with_their_defaults():
    assert parse(type="auth", token="t", id=1) == protocol.Auth(1, "t")
    assert parse(type="sessions") == protocol.Sessions(None, None)
    assert parse(type="sessions", project="app") == protocol.Sessions(None, "app")
    assert parse(type="session_messages", session="abcd") == protocol.SessionMessages(
        None, "abcd", 0, protocol.DEFAULT_PAGE)
    assert parse(type="session_messages", session="abcd", after=7, limit=3) == \
        protocol.SessionMessages(None, "abcd", 7, 3)
    assert parse(type="usage") == protocol.Usage(None, "day", None, None, None)
    assert parse(type="usage", by="model", since="2026-11-01", timezone="Europe/Paris") == \
        protocol.Usage(None, "model", "2026-11-01", None, "Europe/Paris")
    assert parse(type="tools", session="abcd") == protocol.Tools(
        None, None, "abcd", None, None, None)
    assert parse(type="search", query="parser -test", id="q") == protocol.Search(
        "q", "parser -test", protocol.DEFAULT_HITS)
    assert parse(type="search", query="x", limit=protocol.MAX_HITS) == protocol.Search(
        None, "x", protocol.MAX_HITS)


@pytest.mark.parametrize(("obj", "code"), [
    ({"type": "auth"}, "invalid_field"),
    ({"type": "auth", "token": ""}, "invalid_field"),
    ({"type": "auth", "token": 5}, "invalid_field"),
    ({"type": "session_messages"}, "invalid_field"),
    ({"type": "session_messages", "session": "s", "after": -1}, "invalid_field"),
    ({"type": "session_messages", "session": "s", "after": "3"}, "invalid_field"),
    ({"type": "session_messages", "session": "s", "limit": 0}, "invalid_field"),
    ({"type": "session_messages", "session": "s", "limit": protocol.MAX_PAGE + 1},
     "invalid_field"),
    ({"type": "session_messages", "session": "s", "limit": True}, "invalid_field"),
    ({"type": "usage", "by": "fortnight"}, "invalid_field"),
    ({"type": "usage", "since": 20261101}, "invalid_field"),
    ({"type": "tools", "project": ["a"]}, "invalid_field"),
    ({"type": "search"}, "invalid_field"),
    ({"type": "search", "query": "  "}, "invalid_field"),
    ({"type": "search", "query": ["x"]}, "invalid_field"),
    ({"type": "search", "query": "x", "limit": 0}, "invalid_field"),
    ({"type": "search", "query": "x", "limit": protocol.MAX_HITS + 1}, "invalid_field"),
    ({"type": "search", "query": "x", "limit": 2.5}, "invalid_field"),
    ({"type": "find", "query": "x"}, "unknown_type"),
])
def test_malformed_page_requests_get_an_error_code(obj, code):
    with pytest.raises(protocol.ProtocolError) as refused:
        parse(**obj)
    assert refused.value.code == code


def test_every_read_has_a_reply_type_and_is_a_capability():
    for kind in protocol.REPLY_TYPES.values():
        assert kind in protocol.CAPABILITIES
    assert set(protocol.FEED_CAPABILITIES) < set(protocol.CAPABILITIES)


ints = st.integers(-(2**63), 2**63 - 1)
fields = st.none() | st.booleans() | ints | st.text(max_size=8) | st.lists(ints, max_size=2)


@given(st.fixed_dictionaries(
    {"type": st.sampled_from(["auth", "sessions", "session_messages", "usage", "tools",
                              "search"])},
    optional={name: fields for name in ("id", "token", "project", "session", "after", "limit",
                                         "by", "since", "until", "timezone", "query")}))
def test_page_request_shaped_objects_parse_or_fail_cleanly(obj):
    try:
        request = protocol.parse(orjson.dumps(obj).decode())
    except protocol.ProtocolError as e:
        assert e.code and e.message
        return
    if isinstance(request, protocol.SessionMessages):
        assert 1 <= request.limit <= protocol.MAX_PAGE and request.after >= 0
    if isinstance(request, protocol.Search):
        assert request.query.strip() and 1 <= request.limit <= protocol.MAX_HITS
