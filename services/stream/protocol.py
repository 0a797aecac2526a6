"""The WebSocket JSON protocol, without any socket: parsing client frames, building replies.

Client -> server (one JSON object per text frame; "id" is optional and echoed back):
    {"type": "subscribe", "project"?: str, "session"?: str, "since"?: 0 <= int < 2**63}
        (a project's key, short name or alias; a session id or a unique prefix of it: the
        "subscribed" reply names them as the changes do)
    {"type": "unsubscribe", "subscription": int}
    {"type": "ping"}
    {"type": "status"}
Server -> client:
    {"type": "subscribed", "subscription", "project", "session", "since", "head"}
    {"type": "message" | "parse_error", "sequence", "project", "session", "subscription",
     "message" | "error": {...}}                                  (see events.py)
    {"type": "thread_updated" | "analysis_updated", "sequence", "project", "session",
     "subscription", "analysis": {...}}     (threadline.v1.AnalysisUpdate as JSON field names)
    {"type": "unsubscribed", "subscription"}, {"type": "pong"},
    {"type": "status", "head", "subscriptions": [...], "clients", "store_error"}
    {"type": "error", "error": <short code>, "message": <what was wrong>}
        ("since_beyond_head" errors also carry "head", the newest sequence; "invalid_name"
        says which projects or sessions an ambiguous name could be)
    {"type": "store_error", "message": <why the store cannot write, "" once it can again>}
        (sent unasked to every client when it changes, and on connecting while it holds)
Anything malformed gets an error frame; the connection stays open.
"""

from __future__ import annotations

from dataclasses import dataclass

import orjson

from services.stream.errors import StreamError

_ID_TYPES = (str, int, float)
# Sequences are SQLite / protobuf int64.
MAX_SEQUENCE = 2**63 - 1


class ProtocolError(StreamError):
    """A client frame that cannot be understood; answered with an error frame."""

    def __init__(self, code: str, message: str, request_id: object = None):
        super().__init__(message)
        self.code = code
        self.message = message
        self.request_id = request_id


@dataclass(frozen=True, slots=True)
class Subscribe:
    id: object
    project: str | None
    session: str | None
    since: int | None


@dataclass(frozen=True, slots=True)
class Unsubscribe:
    id: object
    subscription: int


@dataclass(frozen=True, slots=True)
class Ping:
    id: object


@dataclass(frozen=True, slots=True)
class Status:
    id: object


Request = Subscribe | Unsubscribe | Ping | Status


def _optional_str(obj: dict, name: str, request_id: object) -> str | None:
    value = obj.get(name)
    if value is None or value == "":
        return None
    if not isinstance(value, str):
        raise ProtocolError("invalid_field", f'"{name}" must be a string', request_id)
    return value


def _int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def parse(frame: str | bytes) -> Request:
    """One client frame as a request; raises ProtocolError for anything else."""
    if isinstance(frame, bytes):
        raise ProtocolError("binary_frame", "send JSON in text frames, not binary frames")
    try:
        obj = orjson.loads(frame)
    except orjson.JSONDecodeError as e:
        raise ProtocolError("invalid_json", f"not valid JSON: {e}") from None
    if not isinstance(obj, dict):
        raise ProtocolError("not_an_object", "a request must be a JSON object")
    request_id = obj.get("id")
    if request_id is not None and (not isinstance(request_id, _ID_TYPES)
                                   or isinstance(request_id, bool)):
        raise ProtocolError("invalid_field", '"id" must be a string or a number')
    kind = obj.get("type")
    if kind == "subscribe":
        since = obj.get("since")
        if since is not None:
            if not _int(since):
                raise ProtocolError("invalid_field", '"since" must be an integer sequence',
                                    request_id)
            if since < 0:
                raise ProtocolError("invalid_since", '"since" must not be negative', request_id)
            if since > MAX_SEQUENCE:
                raise ProtocolError("invalid_since", f'"since" must be at most {MAX_SEQUENCE}',
                                    request_id)
        return Subscribe(request_id, _optional_str(obj, "project", request_id),
                         _optional_str(obj, "session", request_id), since)
    if kind == "unsubscribe":
        subscription = obj.get("subscription")
        if not _int(subscription):
            raise ProtocolError("invalid_field", '"subscription" must be an integer id',
                                request_id)
        return Unsubscribe(request_id, subscription)
    if kind == "ping":
        return Ping(request_id)
    if kind == "status":
        return Status(request_id)
    if not isinstance(kind, str):
        raise ProtocolError("missing_type", 'a request needs a string "type"', request_id)
    raise ProtocolError("unknown_type", f"unknown request type {kind[:64]!r}; expected "
                        "subscribe, unsubscribe, ping or status", request_id)


def reply(kind: str, request_id: object = None, **fields: object) -> bytes:
    out: dict[str, object] = {"type": kind}
    if request_id is not None:
        out["id"] = request_id
    out.update(fields)
    return orjson.dumps(out)


def error_reply(error: ProtocolError) -> bytes:
    return reply("error", error.request_id, error=error.code, message=error.message)
