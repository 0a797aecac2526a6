"""The WebSocket request parser: untrusted input never escapes as anything but ProtocolError."""

from __future__ import annotations

import orjson
from hypothesis import given
from hypothesis import strategies as st

from services.stream import protocol

json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**63), 2**63 - 1)
    | st.floats(allow_nan=False) | st.text(),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(), inner, max_size=4),
    max_leaves=12,
)
requests = st.fixed_dictionaries(
    {"type": st.sampled_from(["subscribe", "unsubscribe", "ping", "status", "x"]) | json_values},
    optional={"id": json_values, "project": json_values, "session": json_values,
              "since": json_values, "subscription": json_values},
)


def _parse(frame):
    try:
        return protocol.parse(frame)
    except protocol.ProtocolError as e:
        assert e.code and e.message
        return None


@given(st.text() | st.binary())
def test_arbitrary_frames_never_crash(frame):
    _parse(frame)


@given(requests)
def test_request_shaped_objects_parse_or_fail_cleanly(obj):
    request = _parse(orjson.dumps(obj).decode())
    if isinstance(request, protocol.Subscribe) and request.since is not None:
        assert isinstance(request.since, int) and request.since >= 0


def test_subscribe_fields():
    request = protocol.parse('{"type":"subscribe","project":"p","since":4,"id":"a"}')
    assert request == protocol.Subscribe("a", "p", None, 4)
