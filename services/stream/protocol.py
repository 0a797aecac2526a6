"""The WebSocket JSON protocol, without any socket: parsing client frames, building replies.

Client -> server (one JSON object per text frame; "id" is optional and echoed back):
    {"type": "subscribe", "project"?: str, "session"?: str, "since"?: 0 <= int < 2**63}
        (a project's key, short name or alias; a session id or a unique prefix of it: the
        "subscribed" reply names them as the changes do)
    {"type": "unsubscribe", "subscription": int}
    {"type": "ping"}
    {"type": "status"}
    {"type": "auth", "token": str}
        (the installation's token, for a browser page that cannot send an Authorization
        header; needed before any other request but ping when every read needs the token)
    {"type": "sessions", "project"?: str}
    {"type": "session_messages", "session": str, "after"?: int, "limit"?: 1..1000}
        (a page of a session's stored messages after sequence "after"; subscribe with that
        session and "since" set to the last sequence received to follow it without a gap)
    {"type": "usage", "by"?: "day" | "week" | "month" | "session" | "project" | "model",
     "since"?: "YYYY-MM-DD", "until"?: "YYYY-MM-DD", "timezone"?: IANA name}
    {"type": "tools", "project"?: str, "session"?: str, "since"?, "until"?, "timezone"?}
    {"type": "search", "query": str, "limit"?: 1..500}
        (the query language of threadline/storage/search_query.py; default 20 hits)
Server -> client:
    {"type": "subscribed", "subscription", "project", "session", "since", "head"}
    {"type": "message" | "parse_error", "sequence", "project", "session", "subscription",
     "message" | "error": {...}}                                  (see events.py)
    {"type": "thread_updated" | "analysis_updated", "sequence", "project", "session",
     "subscription", "analysis": {...}}     (threadline.v1.AnalysisUpdate as JSON field names)
    {"type": "unsubscribed", "subscription"}, {"type": "pong"},
    {"type": "status", "head", "subscriptions": [...], "clients", "store_error",
     "capabilities": [the request types this gateway answers], "authenticated": bool}
    {"type": "authenticated"}
    {"type": "sessions", "sessions": [{"session", "project", "project_name", "title", "cwd",
     "git_branch", "format", "first_timestamp", "last_timestamp", "messages"}]}
        (most recent first; a "usage" request by "session" gives their tokens, cost, models)
    {"type": "session_messages", "session", "messages": [{"sequence", "message": {...}}],
     "next_after": int (0: no more)}
    {"type": "usage", "by", "rows": [...], "total": {...}, "pricing_date"}
    {"type": "tools", "rows": [...], "total": {...}}
        (rows as threadline.v1.UsageRow / ToolStat with their proto field names)
    {"type": "search", "hits": [{"sequence", "key", "uuid", "session", "project",
     "timestamp", "role", "type", "model", "ordinal", "score", "columns",
     "snippet": [{"text", "highlighted"}]}], "more", "recent_only", "expression"}
        (best first; "ordinal" is the message's position in its session, 1 for the first;
        a query that cannot be understood gets an "invalid_request" error saying why)
    {"type": "error", "error": <short code>, "message": <what was wrong>}
        ("since_beyond_head" errors also carry "head", the newest sequence; "invalid_name"
        says which projects or sessions an ambiguous name could be; "unauthenticated" and
        "invalid_token" answer requests that need the token; "not_found", "unavailable"
        answer reads the store or analysis service could not serve)
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


@dataclass(frozen=True, slots=True)
class Auth:
    id: object
    token: str


@dataclass(frozen=True, slots=True)
class Sessions:
    id: object
    project: str | None


@dataclass(frozen=True, slots=True)
class SessionMessages:
    id: object
    session: str
    after: int
    limit: int


@dataclass(frozen=True, slots=True)
class Usage:
    id: object
    by: str
    since: str | None
    until: str | None
    timezone: str | None


@dataclass(frozen=True, slots=True)
class Tools:
    id: object
    project: str | None
    session: str | None
    since: str | None
    until: str | None
    timezone: str | None


@dataclass(frozen=True, slots=True)
class Search:
    id: object
    query: str
    limit: int


Request = (Subscribe | Unsubscribe | Ping | Status | Auth | Sessions | SessionMessages | Usage
           | Tools | Search)
# Reads answered from the store or the analysis service rather than from the change feed.
Read = Sessions | SessionMessages | Usage | Tools | Search
# What the gateway answers; a client offers a view only when its request type is listed.
FEED_CAPABILITIES = ("subscribe", "unsubscribe", "ping", "status", "auth")
CAPABILITIES = (*FEED_CAPABILITIES, "sessions", "session_messages", "usage", "tools", "search")
# The reply type of each read request.
REPLY_TYPES: dict[type, str] = {Sessions: "sessions", SessionMessages: "session_messages",
                                Usage: "usage", Tools: "tools", Search: "search"}
USAGE_GROUPINGS = ("day", "week", "month", "session", "project", "model")
MAX_PAGE = 1000
DEFAULT_PAGE = 500
# The store's bounds of a search (threadline/storage/search.py), checked here so that a bad
# limit is a protocol error like any other field's.
MAX_HITS = 500
DEFAULT_HITS = 20


def _optional_str(obj: dict, name: str, request_id: object) -> str | None:
    value = obj.get(name)
    if value is None or value == "":
        return None
    if not isinstance(value, str):
        raise ProtocolError("invalid_field", f'"{name}" must be a string', request_id)
    return value


def _int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _optional_int(obj: dict, name: str, default: int, low: int, high: int,
                  request_id: object) -> int:
    value = obj.get(name)
    if value is None:
        return default
    if not _int(value):
        raise ProtocolError("invalid_field", f'"{name}" must be an integer', request_id)
    if not low <= value <= high:
        raise ProtocolError("invalid_field", f'"{name}" must be between {low} and {high}',
                            request_id)
    return value


def _period(obj: dict, request_id: object) -> dict[str, str | None]:
    return {name: _optional_str(obj, name, request_id)
            for name in ("since", "until", "timezone")}


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
    if kind == "auth":
        token = obj.get("token")
        if not isinstance(token, str) or not token:
            raise ProtocolError("invalid_field", '"token" must be a non-empty string',
                                request_id)
        return Auth(request_id, token)
    if kind == "sessions":
        return Sessions(request_id, _optional_str(obj, "project", request_id))
    if kind == "session_messages":
        session = _optional_str(obj, "session", request_id)
        if session is None:
            raise ProtocolError("invalid_field", '"session" is required', request_id)
        return SessionMessages(
            request_id, session,
            _optional_int(obj, "after", 0, 0, MAX_SEQUENCE, request_id),
            _optional_int(obj, "limit", DEFAULT_PAGE, 1, MAX_PAGE, request_id))
    if kind == "usage":
        by = _optional_str(obj, "by", request_id) or "day"
        if by not in USAGE_GROUPINGS:
            raise ProtocolError("invalid_field",
                                f'"by" must be one of {", ".join(USAGE_GROUPINGS)}', request_id)
        return Usage(request_id, by, **_period(obj, request_id))
    if kind == "tools":
        return Tools(request_id, _optional_str(obj, "project", request_id),
                     _optional_str(obj, "session", request_id), **_period(obj, request_id))
    if kind == "search":
        query = _optional_str(obj, "query", request_id)
        if query is None or not query.strip():
            raise ProtocolError("invalid_field", '"query" is required', request_id)
        return Search(request_id, query,
                      _optional_int(obj, "limit", DEFAULT_HITS, 1, MAX_HITS, request_id))
    if not isinstance(kind, str):
        raise ProtocolError("missing_type", 'a request needs a string "type"', request_id)
    raise ProtocolError("unknown_type", f"unknown request type {kind[:64]!r}; expected "
                        f"one of {', '.join(CAPABILITIES)}", request_id)


def reply(kind: str, request_id: object = None, **fields: object) -> bytes:
    out: dict[str, object] = {"type": kind}
    if request_id is not None:
        out["id"] = request_id
    out.update(fields)
    return orjson.dumps(out)


def error_reply(error: ProtocolError) -> bytes:
    return reply("error", error.request_id, error=error.code, message=error.message)
