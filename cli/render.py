"""The CLI's human-readable output: tables and reports as text, one function a report.

Every function here takes what a read returned (dicts and dataclasses from the storage layer
and the analysis views) and returns text; the commands print it. Cells from transcripts go
through `threadline.tables.render`, which escapes control characters.
"""

from __future__ import annotations

import time

from threadline.tables import render


def when(ts: str) -> str:
    """An ISO timestamp as `YYYY-MM-DD HH:MM:SS` (as stored: no time-zone conversion)."""
    return ts[:19].replace("T", " ") if ts else ""


def short_ids(ids: list[str], least: int = 8) -> dict[str, str]:
    """Each id cut to its shortest prefix of at least `least` characters that no other id of
    the list shares (every command accepts a unique prefix)."""
    out = {}
    ordered = sorted(set(ids))
    for i, ident in enumerate(ordered):
        length = least
        for other in (ordered[i - 1] if i else "", ordered[i + 1] if i + 1 < len(ordered) else ""):
            common = next((n for n, (a, b) in enumerate(zip(ident, other, strict=False))
                           if a != b), min(len(ident), len(other)))
            length = max(length, common + 1)
        out[ident] = ident[:length]
    return out


def duration(seconds: float) -> str:
    """`45 s`, `12 min`, `3 h 05 min`."""
    if seconds < 60:
        return f"{seconds:.0f} s"
    minutes = int(seconds // 60)
    return f"{minutes} min" if minutes < 60 else f"{minutes // 60} h {minutes % 60:02d} min"


def is_date(text: str) -> bool:
    from datetime import date

    try:
        date.fromisoformat(text)
    except ValueError:
        return False
    return len(text) == 10


def one_line(text: str, width: int) -> str:
    """`text` on one line of at most `width` characters (and "..."), controls escaped."""
    shown = "".join(c if c.isprintable() else repr(c)[1:-1] for c in text[:width])
    return shown[:width] + ("..." if len(shown) > width or len(text) > width else "")


def usage_table(rows: list[dict], total: dict, by: str) -> str:
    """Report rows as aligned columns, with a total line."""
    head = ["SESSION" if by == "session" else by.upper(), "MODELS", "INPUT", "OUTPUT",
            "CACHE WRITE", "CACHE READ", "TOTAL TOKENS", "COST (USD)", "MESSAGES"]

    def cells(r: dict) -> list[str]:
        models = ", ".join(r["models"])
        cost = f"{r['cost_usd']:,.2f}" + ("*" if r["unpriced_messages"] else "")
        return [r["period"], models if len(models) <= 40 else models[:39] + "…",
                *(f"{r[k]:,}" for k in ("input_tokens", "output_tokens",
                                         "cache_creation_tokens", "cache_read_tokens",
                                         "total_tokens")),
                cost, f"{r['messages']:,}"]

    body = [cells(r) for r in rows] + [cells(total)]
    if by == "model":  # the period is the model
        head, body = head[:1] + head[2:], [line[:1] + line[2:] for line in body]
    widths = [max(len(line[i]) for line in [head, *body]) for i in range(len(head))]

    def fmt(line: list[str]) -> str:
        return "  ".join(c.ljust(w) if i < len(head) - 7 else c.rjust(w)
                         for i, (c, w) in enumerate(zip(line, widths, strict=True))).rstrip()

    rule = "  ".join("-" * w for w in widths)
    return "\n".join([fmt(head), *(fmt(line) for line in body[:-1]), rule, fmt(body[-1])])


def tools_text(report) -> str:
    """A tool-usage report (services/analysis/tool_report.py) as tables, then its
    recommendations with their evidence."""
    from services.analysis.tool_report import percent

    def seconds(ms: float, timed: int) -> str:
        return f"{ms / 1000:.1f}" if timed else ""

    grouped = report.by != "tool"
    head = [*(["SESSION" if report.by == "session" else "PROJECT"] if grouped else []),
            "TOOL", "CALLS", "ERRORS", "REJECTED", "INTERRUPTED", "FAILED", "FAIL%", "P50 S",
            "P95 S", "RETRIES", "SWITCHES", "REACTIONS", "SENTIMENT", "ERROR CLASSES"]

    # FAILED and FAIL% are the figures the failing_tool recommendation quotes: errors less
    # the rejections and interruptions, which are a person's decision.
    def cells(r) -> list:
        classes = ", ".join(f"{c} {n}" for c, n in r.error_classes.items())
        return [*([r.group] if grouped else []), r.tool, r.calls, r.errors, r.rejections,
                r.interruptions, r.failures, percent(r.failures, r.calls),
                seconds(r.latency_p50_ms, r.timed_calls), seconds(r.latency_p95_ms, r.timed_calls),
                r.retries, r.switches, r.reactions,
                f"{r.reaction_sentiment_mean:+.2f}" if r.reactions else "", classes]

    first = 1 if grouped else 0
    out = [f"{report.total.calls:,} tool calls in {report.total.sessions:,} sessions; "
           f"times in {report.timezone}", "",
           render(head, [cells(r) for r in report.rows] + [cells(report.total)],
                  right=range(first + 1, first + 13), max_width=70)]
    if report.sequences:
        out += ["", "frequent sequences (consecutive calls)",
                render(["TOOLS", "SUPPORT", "CONFIDENCE"],
                       [[" > ".join(q.tools), q.support, f"{q.confidence:.2f}"]
                        for q in report.sequences[:15]], right=[1, 2])]
    if report.switches:
        out += ["", "after a failure: the next call used another tool",
                render(["FROM", "TO", "COUNT", "NEXT SUCCEEDED"],
                       [[s.from_tool, s.to_tool, s.count, f"{100 * s.success_rate:.0f}%"]
                        for s in report.switches[:15]], right=[2, 3])]
    if report.loops:
        out += ["", "loops (identical calls repeated without progress)",
                render(["SESSION", "TOOL", "REPEATS", "FIRST", "INPUT"],
                       [[lp.session_id, lp.tool, lp.repeats, lp.first_timestamp,
                         lp.input_excerpt] for lp in report.loops[:15]], right=[2])]
    if report.churn:
        out += ["", "edit churn (most edited files)",
                render(["PATH", "EDITS", "SESSIONS", "FAILED"],
                       [[c.path, c.edits, c.sessions, c.failed_edits] for c in report.churn],
                       right=[1, 2, 3], max_width=90)]
    if report.subagents:
        costly = sorted(report.subagents, key=lambda a: -a.cost_usd)[:10]
        out += ["", f"subagents ({len(report.subagents)}; the most expensive)",
                render(["TOOL CALL", "AGENT", "SESSION", "MSGS", "SECONDS", "TOKENS", "COST"],
                       [[a.tool_use_id, a.agent_id, a.session_id, a.messages,
                         f"{a.duration_seconds:.1f}", f"{a.tokens:,}", f"{a.cost_usd:.2f}"]
                        for a in costly], right=[3, 4, 5, 6])]
    days = ["Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun"]
    for title, buckets, names in (("hour", report.by_hour, [f"{b.slot:02d}" for b in
                                                              report.by_hour]),
                                  ("weekday", report.by_weekday, days)):
        out += ["", f"calls and errors by {title} ({report.timezone})",
                render([title.upper(), *names],
                       [["calls", *(b.calls for b in buckets)],
                        ["errors", *(b.errors for b in buckets)]],
                       right=range(1, len(names) + 1))]
    out += ["", "recommendations" if report.recommendations
            else "recommendations: none (not enough evidence for any rule)"]
    for r in report.recommendations:
        out.append(f"[{r.strength:.2f}] {r.kind}{f' ({r.tool})' if r.tool else ''}: {r.text}")
        out += [f"    - {e}" for e in r.evidence]
    return "\n".join(out)


def threads_text(found: dict, tree: bool) -> str:
    """A session's structure (`threadline threads`): segments, branches, subagents,
    compactions and, with `tree`, the reply tree."""
    out: list[str] = []
    nodes = found["nodes"]
    inferred = sum(1 for n in nodes if n["parent_source"] == "inferred")
    resumed_by = ", ".join(found["resumed_by"])
    out.append(f"session {found['session_id']}: {len(nodes)} records, {inferred} parents "
               "inferred"
               + (f"; continues {found['resumed_from']}" if found["resumed_from"] else "")
               + (f"; continued by {resumed_by}" if found["resumed_by"] else ""))
    out.append("\nsegments")
    out.append(render(["#", "START", "END", "MSGS", "PROMPTS", "TOOLS", "BOUNDARY", "SCORE",
                       "TITLE"],
                      [[g["index"], when(g["first_timestamp"]), when(g["last_timestamp"]),
                        g["message_count"], g["prompt_count"], g["tool_call_count"],
                        g["boundary_reason"], f"{g['boundary_score']:.2f}", g["title"]]
                       for g in found["segments"]], right=[0, 3, 4, 5, 7]))
    if found["branches"]:
        out.append("\nbranches (rewinds and edited prompts)")
        out.append(render(["PARENT", "ALTERNATIVES"],
                          [[b["parent_uuid"], ", ".join(b["child_uuids"])]
                           for b in found["branches"]],
                          max_width=120))
    if found["subagents"]:
        out.append("\nsubagents")
        out.append(render(["TOOL CALL", "AGENT", "MSGS", "SECONDS", "TOKENS", "COST"],
                          [[a["tool_use_id"], a["agent_id"], a["messages"],
                            f"{a['duration_seconds']:.1f}", f"{a['tokens']:,}",
                            f"{a['cost_usd']:.2f}"] for a in found["subagents"]],
                          right=[2, 3, 4, 5]))
    if found["compactions"]:
        out.append("\ncompactions")
        out.append(render(["AT", "TRIGGER", "TOKENS BEFORE", "CONTINUES FROM"],
                          [[when(c["timestamp"]), c["trigger"], f"{c['pre_tokens']:,}",
                            c["logical_parent_uuid"]] for c in found["compactions"]], right=[2]))
    if tree:
        out.append("\nreply tree (indent = depth; ~ inferred parent)")
        depth: dict[str, int] = {}
        for n in nodes:
            d = depth.get(n["parent_uuid"], -1) + 1 if n["parent_uuid"] else 0
            depth[n["uuid"] or n["key"]] = d  # formats without ids link by key
            mark = "~" if n["parent_source"] == "inferred" else " "
            label = n["type"] + (f"/{n['role']}" if n["role"] and n["role"] != n["type"] else "")
            out.append(f"{mark}{'  ' * min(d, 40)}{label}: {' '.join(n['excerpt'].split())[:80]}")
    return "\n".join(out)


def analysis_text(found: dict) -> str:
    """A session's analysis (`threadline analyze`): engagement, intents, segments, prompts,
    references and follow-ups."""
    out: list[str] = []
    s = found["summary"]
    prompts = s.get("prompts", 0)
    responses = s.get("responses", 0)
    out.append(f"session {s['session_id']}: {s.get('messages', 0)} records, {prompts} prompts, "
               f"{s.get('assistant_messages', 0)} assistant records, "
               f"{s.get('segments', 0)} segments")
    out.append(f"  {when(s.get('first_timestamp', ''))} .. {when(s.get('last_timestamp', ''))}; "
               f"interruptions {s.get('interruptions', 0)}"
               + (f" ({s['interruptions'] / prompts:.0%} of prompts)" if prompts else "")
               + (f"; mean response {s['response_seconds_sum'] / responses:.1f} s"
                  if responses else "")
               + (f"; mean sentiment {s['sentiment_sum'] / prompts:+.2f}" if prompts else "")
               + f"; branches {s.get('branches', 0)}, compactions {s.get('compactions', 0)}, "
                 f"subagents {s.get('subagents', 0)}")
    if found["intents"]:
        out.append("  intents: " + ", ".join(f"{k} {v}" for k, v in found["intents"].items()))
    out.append("\nsegments")
    out.append(render(["#", "MSGS", "PROMPTS", "BOUNDARY", "SCORE", "COHERENCE", "TITLE",
                       "KEYWORDS"],
                      [[g["index"], g["message_count"], g["prompt_count"], g["boundary_reason"],
                        f"{g['boundary_score']:.2f}", f"{g['coherence']:.2f}", g["title"],
                        ", ".join(g["keywords"][:5])] for g in found["segments"]],
                      right=[0, 1, 2, 4, 5], max_width=50))
    out.append("\nprompts")
    out.append(render(["AT", "SEG", "INTENT", "CONF", "SENTIMENT", "URGENCY", "CLARITY", "GRADE",
                       "SIM", "PROMPT"],
                      [[when(t["timestamp"]), t["segment_index"], t["intent"],
                        f"{t['intent_confidence']:.2f}", f"{t['sentiment']:+.2f}",
                        f"{t['urgency']:.2f}", f"{t['clarity']:.2f}", f"{t['complexity']:.1f}",
                        f"{t['similarity_previous']:.2f}", t["excerpt"]] for t in found["turns"]],
                      right=[1, 3, 4, 5, 6, 7, 8], max_width=60))
    linked = [r for r in found["relationships"]
              if r["kind"] in ("reference", "topic_follow_up")]
    if linked:
        out.append("\nreferences and follow-ups")
        out.append(render(["KIND", "FROM", "TO", "CONF", "EVIDENCE"],
                          [[r["kind"], r["source_key"], r["target_key"], f"{r['confidence']:.2f}",
                            r["evidence"]] for r in linked], right=[3]))
    return "\n".join(out)


def usage_text(found, query) -> str:
    """A usage report (`threadline usage`): the table, then the time zone and price table
    it was computed with, and the models left unpriced."""
    out = [usage_table(found.rows, found.total, query.by)]
    zone = query.tz_name or f"local time ({time.strftime('%Z')})"
    out.append(f"dates in {zone}; prices: {found.pricing_date} table")
    total = found.total
    if total["unpriced_messages"]:
        out.append(f"* {total['unpriced_messages']} responses of models without a price are "
                   f"not in the cost: {', '.join(total['unpriced_models'])} (add them with "
                   "--pricing FILE)")
    return "\n".join(out)


def errors_text(records: list[dict], counts: dict[str, int]) -> str:
    """Stored parse errors (`threadline errors`), one a line, then their count by reason."""
    out = []
    if records:
        out.append(f"{'LOCATION':50} {'OFFSET':>10}  {'REASON':16} EXCERPT")
    for e in records:
        if e["byte_offset"] < 0:  # a file or folder not read at all: say why instead
            out.append(f"{e['path']:50} {'-':>10}  {e['reason']:16} "
                       f"{one_line(e['detail'], 60)}")
            continue
        where = f"{e['path']}:{e['line_number']}"
        out.append(f"{where:50} {e['byte_offset']:>10}  {e['reason']:16} "
                   f"{one_line(e['excerpt'], 60)}")
    total = sum(counts.values())
    by_reason = ", ".join(f"{reason} {n}" for reason, n in counts.items())
    shown = f" ({len(records)} shown)" if len(records) < total else ""
    out.append(f"{total} parse error{'' if total == 1 else 's'}{shown}"
               + (f": {by_reason}" if by_reason else ""))
    return "\n".join(out)


def reparse_text(report) -> str:
    """What `threadline reparse` changed (or would change, with --dry-run)."""
    summary = report.as_dict()
    columns = ", ".join(f"{c} {n}" for c, n in summary["columns"].items())
    verb = "would change" if report.dry_run else "changed"
    out = [f"reparsed {report.messages} messages in {report.seconds:.1f} s: {report.changed} "
           f"{verb}" + (f" ({columns})" if columns else "")]
    before, after = summary["drift"]["before"], summary["drift"]["after"]
    for reason in dict.fromkeys([*before, *after]):
        out.append(f"  drift {reason}: {before.get(reason, 0)} -> {after.get(reason, 0)}")
    out.append(f"tool calls rebuilt: {report.tool_calls_rebuilt} ({report.tool_calls_changed} "
               f"changed); sessions updated: {report.sessions_updated}; projects updated: "
               f"{report.projects_updated}")
    if report.columns_added:
        out.append(f"columns added: {', '.join(report.columns_added)}")
    if report.unparsable:
        out.append(f"{report.unparsable} stored lines no longer parse (kept unchanged), e.g.:")
        for u in summary["unparsable_examples"]:
            out.append(f"  {u['path']}:{u['line_number']}  {u['reason']}  {u['detail']}")
    return "\n".join(out)
