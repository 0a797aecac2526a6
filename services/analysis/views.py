"""A session's threads and analysis as answers (plain dicts shaped like analysis.proto), and
the tool-usage report.

The same dicts are printed by `threadline threads|analyze --json` and turned into
GetThreadsResponse / SessionAnalysis by the servicer, so the CLI and gRPC always agree.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import asdict

import orjson
from sqlalchemy import Connection

from services.analysis import tool_patterns
from services.analysis.tool_report import ToolReport
from threadline.storage import analysis as q
from threadline.storage import names
from threadline.storage.tools import tool_facts


def branches(nodes: list[dict], prompt_keys: set[str]) -> list[dict]:
    """Parents with more than one real alternative child: a typed prompt written at another
    time than the parent's first child (a rewind or an edited prompt; parallel tool results
    and progress side lines share a parent without being alternatives)."""
    children: dict[str, list[dict]] = {}
    for node in nodes:
        if node["thread_parent_uuid"]:
            children.setdefault(node["thread_parent_uuid"], []).append(node)
    out = []
    for parent, kids in children.items():
        if len(kids) < 2:
            continue
        first = kids[0]
        alternatives = [k for k in kids[1:] if k["key"] in prompt_keys
                        and k["timestamp"] != first["timestamp"]]
        if alternatives:
            out.append({"parent_uuid": parent,
                        "child_uuids": [first["uuid"] or first["key"],
                                        *(k["uuid"] or k["key"] for k in alternatives)]})
    return out


def _segment(row: dict) -> dict:
    return {"session_id": row["session_id"], "index": row["idx"], "start_key": row["start_key"],
            "end_key": row["end_key"], "first_timestamp": row["first_timestamp"],
            "last_timestamp": row["last_timestamp"], "title": row["title"],
            "keywords": orjson.loads(row["keywords_json"]),
            "message_count": row["message_count"], "prompt_count": row["prompt_count"],
            "tool_call_count": row["tool_call_count"], "boundary_reason": row["boundary_reason"],
            "boundary_score": row["boundary_score"], "coherence": row["coherence"]}


def threads(conn: Connection, session_id: str, pricing_file=None) -> dict | None:
    """GetThreadsResponse as a dict; None for an unknown session. Subagent costs use the
    bundled price table merged with `pricing_file`, as `threadline usage` does. The session
    may be given by a unique prefix of its id (names.resolve_session: InvalidArgument when it
    is ambiguous or too short)."""
    session_id = names.resolve_session(conn, session_id)
    if not q.session_known(conn, session_id):
        return None
    nodes = q.thread_nodes(conn, session_id)
    prompt_keys = {t["key"] for t in q.turns(conn, session_id)}
    summary = q.summary(conn, session_id) or {}
    subagents = [asdict(tool_patterns.subagent_link(fact))
                 for fact in tool_facts(conn, session_id=session_id,
                                                   pricing_file=pricing_file)
                 if fact.agent_id]
    return {
        "session_id": session_id,
        "resumed_from": summary.get("resumed_from", ""),
        "resumed_by": q.resumed_by(conn, session_id),
        "nodes": [{"key": n["key"], "uuid": n["uuid"], "parent_uuid": n["thread_parent_uuid"],
                   "parent_source": n["thread_parent_source"], "relation": n["thread_relation"],
                   "confidence": n["thread_confidence"], "type": n["type"], "role": n["role"],
                   "timestamp": n["timestamp"], "agent_id": n["agent_id"],
                   "is_sidechain": bool(n["is_sidechain"]), "excerpt": n["excerpt"],
                   "source_path": n["source_path"]} for n in nodes],
        "branches": branches(nodes, prompt_keys),
        "subagents": subagents,
        "compactions": q.compactions(conn, session_id),
        "segments": [_segment(r) for r in q.segments(conn, session_id)],
    }


def analysis(conn: Connection, session_id: str) -> dict | None:
    """SessionAnalysis as a dict; None for an unknown session (given as for `threads`)."""
    session_id = names.resolve_session(conn, session_id)
    if not q.session_known(conn, session_id):
        return None
    turns = q.turns(conn, session_id)
    summary = q.summary(conn, session_id) or {"session_id": session_id}
    return {
        "summary": summary,
        "segments": [_segment(r) for r in q.segments(conn, session_id)],
        "turns": turns,
        "relationships": q.relationships(conn, session_id),
        "intents": dict(Counter(t["intent"] for t in turns).most_common()),
    }


def tool_report(conn: Connection, project: str = "", session: str = "", since: str = "",
                until: str = "", timezone: str = "", by: str = "tool",
                pricing_file=None) -> ToolReport:
    """The tool-usage report for a filter: GetToolStats and `threadline tools`. The project
    and session may be given as a user names them (names.py). Raises StoreError (a bad date
    or zone, an ambiguous name) or ValueError (a bad grouping)."""
    zone = timezone or "UTC"
    project, session = names.resolve_names(conn, project, session)
    facts = tool_facts(conn, project_key=project, session_id=session, since=since,
                                  until=until, timezone=zone, pricing_file=pricing_file)
    return tool_patterns.summarise(facts, by=by, timezone=zone)
