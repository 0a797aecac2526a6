"""Tool-usage report (services/analysis/tool_report.py) -> protobuf (analysis.proto).

Fields that exist only in the plain report (ToolStat.slow_calls and .sessions,
ToolSwitch.successes, ToolReport.by and .tools) have no place on the wire and are left out.
"""

from __future__ import annotations

from collections.abc import Iterable

from services.analysis.tool_report import Recommendation, ToolReport, ToolStat
from threadline.v1 import analysis_pb2 as apb


def stat_to_pb(s: ToolStat) -> apb.ToolStat:
    return apb.ToolStat(
        tool=s.tool, group=s.group, calls=s.calls, errors=s.errors, rejections=s.rejections,
        interruptions=s.interruptions, timed_calls=s.timed_calls,
        latency_p50_ms=s.latency_p50_ms, latency_p95_ms=s.latency_p95_ms, retries=s.retries,
        switches=s.switches, error_classes=s.error_classes, reactions=s.reactions,
        reaction_sentiment_mean=s.reaction_sentiment_mean,
        reaction_interruptions=s.reaction_interruptions,
        reaction_rejections=s.reaction_rejections)


def recommendation_to_pb(r: Recommendation) -> apb.Recommendation:
    return apb.Recommendation(kind=r.kind, text=r.text, evidence=r.evidence,
                              strength=r.strength, tool=r.tool)


def report_to_pb(report: ToolReport) -> apb.ToolStats:
    return apb.ToolStats(
        rows=[stat_to_pb(s) for s in report.rows], total=stat_to_pb(report.total),
        sequences=[apb.ToolSequence(tools=q.tools, support=q.support, confidence=q.confidence)
                   for q in report.sequences],
        switches=[apb.ToolSwitch(from_tool=s.from_tool, to_tool=s.to_tool, count=s.count,
                                 success_rate=s.success_rate) for s in report.switches],
        loops=[apb.ToolLoop(session_id=lp.session_id, tool=lp.tool,
                            input_excerpt=lp.input_excerpt, repeats=lp.repeats,
                            first_key=lp.first_key, first_timestamp=lp.first_timestamp)
               for lp in report.loops],
        churn=[apb.EditChurn(path=c.path, edits=c.edits, sessions=c.sessions,
                             failed_edits=c.failed_edits) for c in report.churn],
        subagents=[apb.SubagentLink(
            tool_use_id=s.tool_use_id, agent_id=s.agent_id, use_message_key=s.use_message_key,
            tool_name=s.tool_name, messages=s.messages, started_at=s.started_at,
            finished_at=s.finished_at, duration_seconds=s.duration_seconds, tokens=s.tokens,
            cost_usd=s.cost_usd, session_id=s.session_id) for s in report.subagents],
        by_hour=[apb.TimeBucket(slot=b.slot, calls=b.calls, errors=b.errors)
                 for b in report.by_hour],
        by_weekday=[apb.TimeBucket(slot=b.slot, calls=b.calls, errors=b.errors)
                    for b in report.by_weekday],
        timezone=report.timezone,
        recommendations=[recommendation_to_pb(r) for r in report.recommendations])


def recommendations_to_pb(recommendations: Iterable[Recommendation]) -> apb.RecommendationList:
    return apb.RecommendationList(
        recommendations=[recommendation_to_pb(r) for r in recommendations])
