"""Reading tool calls: the stored rows (`tool_calls`), and `ToolFact`s (`tool_facts`).

A `ToolFact` is what tool-usage analysis (services/analysis/tool_patterns.py) needs to know
about each call, read from the store's tables in a fixed, small number of queries whatever
the number of calls (no query per call):

1. the calls (`tool_calls`) with their session's project, the store sequence of the message
   that asked for the call (its order in the session) and the content of the message that
   holds the result;
2. the records and billable responses of the subagents the calls started (`agent_id`);
3. the analysed real user prompts (`turns`) of the sessions, for reactions.

Dates (`since`/`until`, inclusive) are those of the call's start (its result's time when the
start is unknown) in `timezone`, validated and read as `threadline usage` reads them
(`accounting.usage_query`); a call without a readable time is left out when either is given.
"""

from __future__ import annotations

import bisect
import math
from collections import defaultdict
from collections.abc import Iterator
from datetime import date, timedelta, tzinfo
from pathlib import Path

import orjson
from sqlalchemy import Connection, Result, Row, and_, func, or_, select

from threadline.domain import billing, timestamps
from threadline.domain.analysis import ToolFact
from threadline.storage import accounting, pricing, schema
from threadline.storage.usage import _EMBEDDED, _EMBEDS_USAGE, _USAGE_COLUMNS

RESULT_TEXT_CHARS = 2000
# Every timestamp starts with its UTC date or a local date at most 14 hours away from it, so
# a string range one day wider than asked keeps every call SQLite cannot place exactly.
_SLACK = timedelta(days=1)

_t, _m, _s = schema.tool_calls, schema.messages, schema.sessions


def tool_calls(conn: Connection, session_id: str = "") -> list[dict]:
    """Tool calls (every one when `session_id` is empty), ordered by start time."""
    t = schema.tool_calls
    query = select(t).order_by(t.c.started_at, t.c.tool_use_id)
    if session_id:
        query = query.where(t.c.session_id == session_id)
    return [dict(r) for r in conn.execute(query).mappings()]


def tool_facts(conn: Connection, project_key: str = "", session_id: str = "", since: str = "",
               until: str = "", timezone: str = "UTC",
               pricing_file: Path | str | None = None) -> list[ToolFact]:
    """Every stored tool call that passes the filters, ordered by session then sequence.

    Raises InvalidArgument (threadline.storage.errors) for a date or time zone it cannot read.
    Subagent costs use the bundled price table merged with `pricing_file`.
    """
    query = accounting.usage_query("day", since, until, timezone or "UTC")
    facts, result_seqs = _calls(conn, project_key, session_id, query.since, query.until,
                                query.tz)
    if any(f.agent_id for f in facts):
        _add_subagents(conn, facts, pricing.load(pricing_file))
    _add_reactions(conn, facts, result_seqs, session_id)
    return facts


# --- 1. the calls ----------------------------------------------------------------------------

def _calls(conn: Connection, project_key: str, session_id: str, since: date | None,
           until: date | None, tz: tzinfo | None) -> tuple[list[ToolFact], list[int]]:
    """The calls, and for each the sequence of its result's message (0: no result yet)."""
    use, res = _m.alias("use_message"), _m.alias("result_message")
    project = func.coalesce(func.nullif(_s.c.project_key, ""), func.nullif(use.c.project_key, ""),
                            res.c.project_key, "").label("project")
    moment = func.coalesce(func.nullif(_t.c.started_at, ""), _t.c.finished_at)
    query = (
        select(_t.c.tool_use_id, _t.c.session_id, _t.c.name, _t.c.input_json, _t.c.is_error,
               _t.c.started_at, _t.c.finished_at, _t.c.use_message_key,
               _t.c.result_message_key, _t.c.agent_id, project,
               use.c.seq, res.c.seq, use.c.agent_id, use.c.is_sidechain, res.c.content_json)
        .select_from(_t.outerjoin(_s, _s.c.session_id == _t.c.session_id)
                     .outerjoin(use, and_(_t.c.use_message_key != "",
                                          use.c.key == _t.c.use_message_key))
                     .outerjoin(res, and_(_t.c.result_message_key != "",
                                          res.c.key == _t.c.result_message_key)))
    )
    if session_id:
        query = query.where(_t.c.session_id == session_id)
    if project_key:
        query = query.where(project == project_key)
    if since is not None:
        query = query.where(func.substr(moment, 1, 10) >= (since - _SLACK).isoformat())
    if until is not None:
        query = query.where(func.substr(moment, 1, 10) <= (until + _SLACK).isoformat())
    facts: list[tuple[ToolFact, int]] = []
    # A result message may answer several calls (parallel calls, Gemini): parse its content
    # once, keeping only those answers for the calls still to come.
    parsed: dict[str, dict[str, tuple[str, float | None]]] = {}
    dated = since is not None or until is not None
    # Page by page: the rows carry the result messages' whole content.
    for (tool_use_id, session, name, input_json, is_error, started_at, finished_at, use_key,
         result_key, agent_id, project_of, use_seq, result_seq, caller, sidechain,
         content) in _rows(conn.execute(query)):
        if dated:
            day = _local_date(started_at or finished_at, tz)
            if day is None or (since and day < since) or (until and day > until):
                continue
        result_text, seconds = "", None
        if content is not None:
            texts = parsed.get(result_key)
            if texts is None:
                texts = _results(content)
                if len(texts) > 1:
                    parsed[result_key] = texts
            result_text, seconds = texts.pop(tool_use_id, ("", None))
            if not texts:
                parsed.pop(result_key, None)
        facts.append((ToolFact(
            tool_use_id=tool_use_id, session_id=session, project_key=project_of, name=name,
            input_json=bytes(input_json or b""), is_error=bool(is_error),
            result_text=result_text, started_at=started_at, finished_at=finished_at,
            duration_seconds=seconds,
            sequence=use_seq or result_seq or 0, use_message_key=use_key, agent_id=agent_id,
            caller=caller or ("sidechain" if sidechain else "")), result_seq or 0))
    facts.sort(key=lambda pair: (pair[0].session_id, pair[0].sequence, pair[0].started_at,
                                 pair[0].tool_use_id))
    return [f for f, _ in facts], [r for _, r in facts]


def _rows(result: Result, page: int = 2000) -> Iterator[Row]:
    for rows in result.partitions(page):
        yield from rows


def _local_date(timestamp: str, tz: tzinfo | None) -> date | None:
    moment = timestamps.parse_timestamp(timestamp or "")
    if moment is None:
        return None
    try:
        return moment.astimezone(tz).date()
    except OverflowError:  # 0001-01-01T00:00:00Z has no date west of UTC
        return None


def _results(content_json: bytes) -> dict[str, tuple[str, float | None]]:
    """tool_use_id -> (the first characters of its tool_result block's text, the run time the
    block states). rows.py stores blocks as {"kind": "tool_result", "tool_use_id": ...,
    "text": ..., "duration_seconds": ...}, the last only when the output stated one."""
    try:
        blocks = orjson.loads(content_json)
    except orjson.JSONDecodeError:
        return {}
    out: dict[str, tuple[str, float | None]] = {}
    for block in blocks if isinstance(blocks, list) else ():
        if isinstance(block, dict) and block.get("kind") == "tool_result":
            ident = block.get("tool_use_id")
            if isinstance(ident, str) and ident and ident not in out:
                text = block.get("text")
                seconds = block.get("duration_seconds")
                out[ident] = (text[:RESULT_TEXT_CHARS] if isinstance(text, str) else "",
                              float(seconds) if isinstance(seconds, int | float)
                              and not isinstance(seconds, bool) else None)
    return out


# --- 2. subagents ----------------------------------------------------------------------------

def _add_subagents(conn: Connection, facts: list[ToolFact], table: pricing.PricingTable) -> None:
    """Each subagent's own records (user and assistant lines carrying its agentId) and its
    billable responses, each API response once (billing.billable_responses: streamed
    lines, copies embedded in the parent's agent_progress lines and replays collapse)."""
    agents = select(_t.c.agent_id).where(_t.c.agent_id != "").distinct()
    counts = dict(conn.execute(
        select(_m.c.agent_id, func.count()).where(_m.c.agent_id.in_(agents),
                                                  _m.c.type.in_(("user", "assistant")))
        .group_by(_m.c.agent_id)).all())
    rows_by_agent: dict[str, list[dict]] = defaultdict(list)
    # The columns and the agent_progress test are the ones `threadline usage` reads.
    usage = (select(*_USAGE_COLUMNS, _m.c.agent_id, _EMBEDDED)
             .where(_m.c.agent_id.in_(agents),
                    or_(_m.c.input_tokens.is_not(None), _EMBEDS_USAGE))
             .order_by(_m.c.seq))
    for row in conn.execute(usage).mappings():
        rows_by_agent[row["agent_id"]].append(dict(row))
    figures: dict[str, tuple[int, float]] = {}
    for agent, rows in rows_by_agent.items():
        tokens, costs = 0, []
        for r in billing.billable_responses(rows):
            tokens += r.total_tokens
            cost = table.cost(
                r.model, input_tokens=r.input_tokens, output_tokens=r.output_tokens,
                cache_creation_tokens=r.cache_creation_tokens,
                cache_creation_5m_tokens=r.cache_creation_5m_tokens,
                cache_creation_1h_tokens=r.cache_creation_1h_tokens,
                cache_read_tokens=r.cache_read_tokens)
            if cost.priced:  # an unpriced model adds tokens, never a made-up cost
                costs.append(cost.usd)
        figures[agent] = (tokens, math.fsum(costs))
    for fact in facts:
        if fact.agent_id:
            fact.subagent_messages = counts.get(fact.agent_id, 0)
            fact.subagent_tokens, fact.subagent_cost_usd = figures.get(fact.agent_id, (0, 0.0))


# --- 3. reactions ----------------------------------------------------------------------------

def _add_reactions(conn: Connection, facts: list[ToolFact], result_seqs: list[int],
                   session_id: str) -> None:
    """The reaction to a call of the main conversation: the first analysed real prompt of its
    session stored after the call's result and before the next call the main conversation
    asked for after that result. Parallel calls answered together share the prompt that
    follows them. A subagent's calls get none: people answer the parent, not the subagent,
    and a subagent's file is stored apart from its parent's (its sequences are no clock)."""
    has_turns = conn.exec_driver_sql(
        "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'turns'").first()
    if not facts or has_turns is None:
        return
    tu = schema.turns
    query = (select(tu.c.session_id, _m.c.seq, tu.c.intent, tu.c.sentiment)
             .select_from(tu.join(_m, _m.c.key == tu.c.key)).order_by(tu.c.session_id, _m.c.seq))
    if session_id:
        query = query.where(tu.c.session_id == session_id)
    prompts: dict[str, list[tuple[int, str, float]]] = defaultdict(list)
    sessions = {f.session_id for f in facts}
    for row in conn.execute(query):
        if row.session_id in sessions:
            prompts[row.session_id].append((row.seq, row.intent, row.sentiment))
    if not prompts:
        return
    uses: dict[str, list[int]] = defaultdict(list)
    for fact in facts:
        if fact.use_message_key and fact.sequence and not fact.caller:
            uses[fact.session_id].append(fact.sequence)
    for found in uses.values():
        found.sort()
    seqs = {s: [p[0] for p in found] for s, found in prompts.items()}
    for fact, result_seq in zip(facts, result_seqs, strict=True):
        found = prompts.get(fact.session_id)
        if not found or not result_seq or fact.caller:
            continue
        at = bisect.bisect_right(seqs[fact.session_id], result_seq)
        if at == len(found):
            continue
        prompt_seq, intent, sentiment = found[at]
        session_uses = uses.get(fact.session_id, [])
        after = bisect.bisect_right(session_uses, result_seq)
        if after < len(session_uses) and session_uses[after] < prompt_seq:
            continue  # the assistant went on with another call first
        fact.reaction_intent, fact.reaction_sentiment = intent, sentiment
