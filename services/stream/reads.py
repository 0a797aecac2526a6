"""The page's reads: the store's and the analysis service's existing queries, as plain dicts.

The gateway answers `sessions`, `session_messages`, `usage`, `tools` and `search` requests with
these.
Every call goes over grpc.aio on the gateway's event loop, so a slow query delays only the
request that asked for it. gRPC failures become the service's own errors here, at the
boundary: INVALID_ARGUMENT is InvalidRequest (an ambiguous session prefix), NOT_FOUND is
NotFound, anything else Unavailable.
"""

from __future__ import annotations

from collections.abc import Awaitable
from typing import TypeVar

import grpc
import orjson
from google.protobuf.message import Message

from services.stream import protocol
from services.stream.errors import InvalidRequest, NotFound, Unavailable
from services.stream.events import message_dict
from threadline import bootstrap
from threadline.auth import Security
from threadline.convert import FORMAT_FROM_PB
from threadline.v1 import analysis_pb2, analysis_pb2_grpc, store_pb2, store_pb2_grpc

# A read that takes longer than this is answered with an "unavailable" error frame.
READ_TIMEOUT = 30.0
# A page of messages ends after the message that brings it past this many bytes of JSON
# (tool results can be large), well inside the gateway's per-connection send queue.
PAGE_BYTES = 4 * 1024 * 1024

T = TypeVar("T")


class Reads:
    """Clients of the store and the analysis service for the page's queries."""

    def __init__(self, store_addr: str, analysis_addr: str, security: Security | None = None):
        self._store_channel = bootstrap.channel(store_addr, security)
        self._analysis_channel = bootstrap.channel(analysis_addr, security)
        self._store = store_pb2_grpc.StoreServiceStub(self._store_channel)
        self._analysis = analysis_pb2_grpc.AnalysisServiceStub(self._analysis_channel)

    async def close(self) -> None:
        await self._store_channel.close()
        await self._analysis_channel.close()

    async def answer(self, request: protocol.Read) -> dict:
        """The reply fields for one read request."""
        if isinstance(request, protocol.Sessions):
            return {"sessions": await self.sessions(request.project)}
        if isinstance(request, protocol.SessionMessages):
            return await self.session_messages(request.session, request.after, request.limit)
        if isinstance(request, protocol.Usage):
            return await self.usage(request)
        if isinstance(request, protocol.Search):
            return await self.search(request.query, request.limit)
        return await self.tools(request)

    async def sessions(self, project: str | None) -> list[dict]:
        """Stored sessions, most recent first. Their tokens, cost and models come from a
        `usage` request by session: that takes the store far longer (it reads every record),
        so a page shows the list first and fills those in when they come."""
        listed = await _call(self._store.ListSessions(store_pb2.ListSessionsRequest(
            project_key=project or ""), timeout=READ_TIMEOUT))
        out = [session_dict(s) for s in listed.sessions]
        out.sort(key=lambda s: s["last_timestamp"], reverse=True)
        return out

    async def session_messages(self, session: str, after: int, limit: int) -> dict:
        found = await _call(self._store.GetSessionMessages(store_pb2.GetSessionMessagesRequest(
            session_id=session, after_sequence=after, limit=limit), timeout=READ_TIMEOUT))
        messages, size = [], 0
        next_after = found.next_after_sequence
        for stored in found.messages:
            if messages and size >= PAGE_BYTES:
                # The rest is the next page: a reply this large would crowd out live frames
                # in the connection's send queue (or overflow it).
                next_after = messages[-1]["sequence"]
                break
            encoded = _encoded(stored.message)
            size += len(encoded)
            messages.append({"sequence": stored.sequence, "message": orjson.Fragment(encoded)})
        # The resolved id (the request may give a prefix), so the client subscribes by it.
        resolved = found.messages[0].message.session_id if found.messages else session
        return {"session": resolved, "messages": messages, "next_after": next_after}

    async def usage(self, request: protocol.Usage) -> dict:
        found = await _call(self._store.GetUsage(store_pb2.GetUsageRequest(
            by=request.by, since=request.since or "", until=request.until or "",
            timezone=request.timezone or ""), timeout=READ_TIMEOUT))
        return {"by": request.by, "rows": [plain(r) for r in found.rows],
                "total": plain(found.total), "pricing_date": found.pricing_date}

    async def tools(self, request: protocol.Tools) -> dict:
        found = await _call(self._analysis.GetToolStats(analysis_pb2.ToolStatsRequest(
            project_key=request.project or "", session_id=request.session or "",
            since=request.since or "", until=request.until or "",
            timezone=request.timezone or ""), timeout=READ_TIMEOUT))
        return {"rows": [plain(r) for r in found.rows], "total": plain(found.total)}

    async def search(self, query: str, limit: int) -> dict:
        """Messages matching `query`, best first; a query the store cannot understand is
        InvalidRequest with its reason."""
        found = await _call(self._store.Search(store_pb2.SearchRequest(
            query=query, limit=limit), timeout=READ_TIMEOUT))
        return {"hits": [search_hit_dict(h) for h in found.hits], "more": found.more,
                "recent_only": found.recent_only, "expression": found.expression}


async def _call(call: Awaitable[T]) -> T:
    try:
        return await call
    except grpc.aio.AioRpcError as e:
        if e.code() == grpc.StatusCode.INVALID_ARGUMENT:
            raise InvalidRequest(e.details() or "invalid request") from e
        if e.code() == grpc.StatusCode.NOT_FOUND:
            raise NotFound(e.details() or "not found") from e
        raise Unavailable(f"{e.code().name.lower()}: {e.details()}") from e


def _encoded(message) -> bytes:
    """A message's JSON, never raising: tool input nested deeper than orjson writes is sent
    as its text (as events.py does for live changes)."""
    try:
        return orjson.dumps(message_dict(message))
    except orjson.JSONEncodeError:
        return orjson.dumps(message_dict(message, parse_input=False))


def session_dict(s: store_pb2.Session) -> dict:
    return {
        "session": s.session_id, "project": s.project_key, "project_name": s.project_name,
        "title": s.title, "cwd": s.cwd, "git_branch": s.git_branch,
        "format": FORMAT_FROM_PB.get(s.format, ""), "first_timestamp": s.first_timestamp,
        "last_timestamp": s.last_timestamp, "messages": s.message_count,
    }


def search_hit_dict(h: store_pb2.SearchHit) -> dict:
    """A hit, named as the page's other replies name a session and a project."""
    return {
        "sequence": h.sequence, "key": h.key, "uuid": h.uuid, "session": h.session_id,
        "project": h.project_key, "timestamp": h.timestamp, "role": h.role, "type": h.type,
        "model": h.model, "ordinal": h.ordinal, "score": h.score, "columns": list(h.columns),
        "snippet": [{"text": p.text, "highlighted": p.highlighted} for p in h.snippet],
    }


def plain(message: Message) -> dict:
    """A flat protobuf message as a dict of its fields by proto name, numbers as numbers
    (json_format would write int64 as strings)."""
    out: dict[str, object] = {}
    for field in message.DESCRIPTOR.fields:
        value = getattr(message, field.name)
        if field.message_type is not None and field.message_type.GetOptions().map_entry:
            out[field.name] = dict(value)
        elif field.is_repeated:
            out[field.name] = list(value)
        elif field.message_type is None:
            out[field.name] = value
    return out
