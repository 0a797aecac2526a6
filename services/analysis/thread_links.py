"""Each record's place in threadline's reply tree: its parent, where that came from, how sure.

A record's identity in the tree is its uuid, or its storage key when the format writes no ids
(`node_id`), so `thread_parent_uuid` holds the parent's uuid or, for such formats, its key.
A record's thread parent is the `parentUuid` its source recorded when there is one ("recorded",
confidence 1). Otherwise it is inferred from file order by `reply_inference.ReplyThreader`
("inferred"), and its confidence is the precision the rule that chose it reached on real
Claude Code transcripts whose links were removed (`make eval` measures it and
`python -m evaluation.threading --write-calibration` stores it in reply_calibration.json; a
test checks the file against the corpus). The relation says what kind of link it is: a
record holding tool results continues the tool call it answers ("tool_continuation"), any
other child "response"; roots have none.
"""

from __future__ import annotations

import json
from functools import cache
from pathlib import Path

from services.analysis.reply_inference import NONE, ReplyThreader
from threadline.domain.links import (  # noqa: F401  (callers name the link's kinds from here)
    INFERRED,
    RECORDED,
    RESPONSE,
    TOOL_CONTINUATION,
    ThreadLink,
)
from threadline.domain.records import CLAUDE_CODE, CODEX, Record

CALIBRATION_FILE = Path(__file__).with_name("reply_calibration.json")


@cache
def rule_precision() -> dict[str, float]:
    """Measured precision of each inference rule (empty when the file is missing)."""
    try:
        data = json.loads(CALIBRATION_FILE.read_text())
    except (OSError, ValueError):
        return {}
    return {rule: float(v["precision"]) for rule, v in data.get("rules", {}).items()}


def _relation(rec: Record) -> str:
    for block in rec.content:
        if block.kind == "tool_result":
            return TOOL_CONTINUATION
    return RESPONSE


def node_id(rec: Record) -> str:
    """The record's identity in the reply tree, "" when it is not a node.

    Its uuid when it has one. Claude Code records without a uuid are metadata (summaries,
    snapshots, queue operations), never nodes. Codex writes no ids at all: its conversation
    is the `response_item` lines (messages, reasoning, function calls and their outputs;
    `event_msg` lines repeat them as events), identified by their storage key. Gemini and
    generic chat records are nodes when they have a role, identified by their key when they
    have no uuid."""
    if rec.uuid:
        return rec.uuid
    if rec.format == CLAUDE_CODE:
        return ""
    if rec.format == CODEX:
        return rec.key if rec.type == "response_item" else ""
    return rec.key if rec.role else ""


def link(rec: Record, threader: ReplyThreader) -> ThreadLink:
    """The record's link; `threader` (the record's file's) always steps, to stay in order."""
    ident = node_id(rec)
    inferred, rule = threader.step(rec, ident)
    if not ident:
        return ThreadLink(rule=NONE)
    if rec.parent_uuid:
        return ThreadLink(rec.parent_uuid, RECORDED, _relation(rec), 1.0, "parentUuid")
    if not inferred:
        return ThreadLink(rule=rule)
    return ThreadLink(inferred, INFERRED, _relation(rec), rule_precision().get(rule, 0.0), rule)


__all__ = ["INFERRED", "RECORDED", "ThreadLink", "link", "rule_precision"]
