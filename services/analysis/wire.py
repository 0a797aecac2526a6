"""Analysis results (threadline/domain/analysis.py) <-> protobuf (analysis_types.proto)."""

from __future__ import annotations

from threadline.domain.analysis import (
    Relationship,
    Segment,
    SessionChanges,
    SessionSummary,
    Turn,
)
from threadline.v1 import analysis_types_pb2 as apb


def segment_to_pb(g: Segment) -> apb.Segment:
    return apb.Segment(
        session_id=g.session_id, index=g.index, start_key=g.start_key, end_key=g.end_key,
        first_timestamp=g.first_timestamp, last_timestamp=g.last_timestamp, title=g.title,
        keywords=g.keywords, message_count=g.message_count, prompt_count=g.prompt_count,
        tool_call_count=g.tool_call_count, boundary_reason=g.boundary_reason,
        boundary_score=g.boundary_score, coherence=g.coherence, merged=g.merged)


def turn_to_pb(t: Turn) -> apb.TurnAnalysis:
    a = t.analysis
    return apb.TurnAnalysis(
        key=t.key, session_id=t.session_id, timestamp=t.timestamp, intent=a.intent,
        intent_confidence=a.intent_confidence, intent_evidence=a.intent_evidence,
        sentiment=a.sentiment, urgency=a.urgency, clarity=a.clarity, complexity=a.complexity,
        similarity_previous=a.similarity_previous, word_count=a.word_count,
        segment_index=t.segment_index, excerpt=t.excerpt)


def relationship_to_pb(r: Relationship) -> apb.Relationship:
    return apb.Relationship(source_key=r.source_key, target_key=r.target_key, kind=r.kind,
                            confidence=r.confidence, evidence=r.evidence,
                            session_id=r.session_id)


def summary_to_pb(s: SessionSummary) -> apb.SessionSummary:
    return apb.SessionSummary(
        session_id=s.session_id, project_key=s.project_key, messages=s.messages,
        prompts=s.prompts, assistant_messages=s.assistant_messages,
        interruptions=s.interruptions, response_seconds_sum=s.response_seconds_sum,
        responses=s.responses, first_timestamp=s.first_timestamp,
        last_timestamp=s.last_timestamp, branches=s.branches, compactions=s.compactions,
        subagents=s.subagents, resumed_from=s.resumed_from, sentiment_sum=s.sentiment_sum,
        segments=s.segments)


def update_to_pb(c: SessionChanges) -> apb.AnalysisUpdate:
    merged = [apb.Segment(session_id=c.session_id, index=i, merged=True) for i in c.merged]
    out = apb.AnalysisUpdate(
        session_id=c.session_id,
        segments=merged + [segment_to_pb(g) for g in c.segments.values()],
        turns=[turn_to_pb(t) for t in c.turns],
        relationships=[relationship_to_pb(r) for r in c.relationships],
        thread_changed=c.thread_changed)
    if c.summary is not None:
        out.summary.CopyFrom(summary_to_pb(c.summary))
    return out
