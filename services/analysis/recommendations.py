"""Recommendations from a tool-usage report, each with the evidence it rests on.

Pure functions of a `ToolReport` (services/analysis/tool_patterns.py). A rule speaks only
when its evidence reaches the minimum counts below; its strength (0..1, the ranking weight)
is computed from the same figures, so more evidence of the same rate makes it stronger:

- for a rate (failures per call, successes per switch...): the lower bound of the 95% Wilson
  score interval of k successes in n trials, `wilson_lower(k, n)`: 3 of 5 scores 0.23, 30 of
  50 scores 0.46 although both are 60%;
- for an amount without a natural denominator (repeated calls, re-edits, dollars):
  `saturating(x, half) = x / (x + half)`, 0.5 at `half`, approaching 1.

docs/analysis.md ("Tool usage") lists every rule with its thresholds.
"""

from __future__ import annotations

import math
from collections import defaultdict

from services.analysis.tool_report import Recommendation, ToolReport, ToolStat, percent

Z95 = 1.959964

# failing_tool: enough calls and failures, and a failure rate surely above FAILING_RATE.
MIN_CALLS = 20
MIN_FAILURES = 5
FAILING_RATE = 0.10
# Error classes with a known remedy: this many errors of the class for one tool.
MIN_CLASS_ERRORS = 5
# rejected_tool: people rejected the tool's calls this often, surely above REJECTED_RATE.
MIN_REJECTIONS = 5
REJECTED_RATE = 0.05
# retry_loop: this many calls repeated without progress (repeats beyond the first call).
MIN_LOOP_WASTE = 4
LOOP_HALF = 10
# edit_churn: a file edited this often, this often per session it was edited in; only the
# MAX_CHURN_FILES most edited such files.
MIN_CHURN_EDITS = 15
MIN_EDITS_PER_SESSION = 5.0
CHURN_HALF = 20
MAX_CHURN_FILES = 5
# switch_after_failure: this many switches of one pair, and among the failures of the first
# tool that were followed by a call, the share followed by a successful call of the second
# surely above SWITCH_SUCCESS_RATE.
MIN_SWITCHES = 5
SWITCH_SUCCESS_RATE = 0.25
# slow_tool: this many timed calls and slow ones (> tool_patterns.SLOW_CALL_MS), the share
# surely above SLOW_RATE. Subagent tools are judged by cost instead.
MIN_TIMED_CALLS = 20
MIN_SLOW_CALLS = 5
SLOW_RATE = 0.10
# costly_subagents: this many subagent runs with a cost, costing this much together.
MIN_SUBAGENTS = 3
MIN_SUBAGENT_COST_USD = 1.0
COST_HALF_USD = 10.0
# negative_reaction: this many reactions, the share of rejections and interruptions surely
# above NEGATIVE_RATE.
MIN_REACTIONS = 10
MIN_NEGATIVE_REACTIONS = 3
NEGATIVE_RATE = 0.2

# Error class -> (kind, what to do).
REMEDIES: dict[str, tuple[str, str]] = {
    "not_read_first": ("read_before_edit",
                       "Read a file before editing or overwriting it: {tool} refused {n} calls "
                       "on files not read in the session."),
    "stale_read": ("reread_before_edit",
                   "Read the file again before editing when it may have changed: {tool} "
                   "refused {n} calls on files modified since they were read."),
    "string_not_found": ("edit_mismatch",
                         "Copy old_string from a fresh Read of the file, with its exact "
                         "indentation: {n} {tool} calls did not find the text to replace."),
    "ambiguous_match": ("edit_ambiguous",
                        "Give old_string enough surrounding lines to be unique (or use "
                        "replace_all): {n} {tool} calls matched several places."),
    "no_change": ("no_op_edit",
                  "Check that an edit changes something: {n} {tool} calls had identical old "
                  "and new text."),
    "file_not_found": ("check_paths",
                       "Find paths (Glob, ls) before using them: {n} {tool} calls named a file "
                       "that does not exist or is a directory."),
    "too_large": ("read_in_parts",
                  "Read large files in parts (offset/limit) or search them (Grep): {n} {tool} "
                  "calls exceeded the size limit."),
    "timeout": ("command_timeout",
                "Run long commands in the background or with a longer timeout: {n} {tool} "
                "calls timed out."),
    "permission_denied": ("permission_rules",
                          "Allow the commands that are needed in the permission settings, or "
                          "avoid them: {n} {tool} calls were denied."),
    "validation": ("tool_input",
                   "Check the tool's parameters and names: {n} {tool} calls had invalid "
                   "input."),
    "sibling_failed": ("parallel_failures",
                       "Run calls that depend on each other one after another: {n} {tool} calls "
                       "were cancelled because a parallel call failed."),
    "network": ("network_errors",
                "Check the address and the network before fetching: {n} {tool} calls failed "
                "on the network or with an HTTP error."),
}
SUBAGENT_TOOLS = frozenset({"Task", "Agent"})


def wilson_lower(k: int, n: int, z: float = Z95) -> float:
    """Lower bound of the Wilson score interval of k successes in n trials (0 when n = 0)."""
    if n <= 0:
        return 0.0
    p = k / n
    centre = p + z * z / (2 * n)
    spread = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n))
    return max(0.0, (centre - spread) / (1 + z * z / n))


def saturating(x: float, half: float) -> float:
    return x / (x + half) if x > 0 else 0.0


def _n(count: int, noun: str) -> str:
    return f"{count} {noun}{'' if count == 1 else 's'}"


def _failing(stat: ToolStat) -> Recommendation | None:
    n, k = stat.calls, stat.failures
    if n < MIN_CALLS or k < MIN_FAILURES:
        return None
    bound = wilson_lower(k, n)
    if bound < FAILING_RATE:
        return None
    classes = ", ".join(f"{c} {m}" for c, m in stat.error_classes.items()
                        if c not in ("user_rejected", "interrupted"))
    return Recommendation(
        "failing_tool",
        f"{stat.tool} fails often ({percent(k, n)} of its calls): look at its most frequent "
        f"error classes below.",
        [f"{k} failures in {n} calls ({percent(k, n)}; 95% lower bound {100 * bound:.1f}%, "
         f"threshold {100 * FAILING_RATE:.0f}%)", f"error classes: {classes}",
         f"in {_n(stat.sessions, 'session')}"], round(bound, 4), stat.tool)


def _remedies(stat: ToolStat) -> list[Recommendation]:
    out = []
    for error_class, count in stat.error_classes.items():
        if error_class not in REMEDIES or count < MIN_CLASS_ERRORS:
            continue
        kind, text = REMEDIES[error_class]
        share = wilson_lower(count, stat.errors)
        out.append(Recommendation(
            kind, text.format(tool=stat.tool, n=count),
            [f"{count} of {stat.errors} errors of {stat.tool} are {error_class} "
             f"({percent(count, stat.errors)}; 95% lower bound {100 * share:.1f}%)",
             f"{stat.tool}: {stat.calls} calls, {stat.errors} errors"], round(share, 4),
            stat.tool))
    return out


def _rejected(stat: ToolStat) -> Recommendation | None:
    n, k = stat.calls, stat.rejections
    if k < MIN_REJECTIONS:
        return None
    bound = wilson_lower(k, n)
    if bound < REJECTED_RATE:
        return None
    return Recommendation(
        "rejected_tool",
        f"People often reject {stat.tool} calls: propose the change first (plan mode) or "
        f"ask before such calls.",
        [f"{k} of {n} calls rejected ({percent(k, n)}; 95% lower bound {100 * bound:.1f}%, "
         f"threshold {100 * REJECTED_RATE:.0f}%)", f"in {_n(stat.sessions, 'session')}"],
        round(bound, 4), stat.tool)


def _negative(stat: ToolStat) -> Recommendation | None:
    n = stat.reactions
    k = stat.reaction_rejections + stat.reaction_interruptions
    if n < MIN_REACTIONS or k < MIN_NEGATIVE_REACTIONS:
        return None
    bound = wilson_lower(k, n)
    if bound < NEGATIVE_RATE:
        return None
    return Recommendation(
        "negative_reaction",
        f"After {stat.tool} calls people often stop or reject the work: check what these "
        f"calls do before running them.",
        [f"{k} of {n} prompts right after a {stat.tool} result reject or interrupt "
         f"({stat.reaction_rejections} rejections, {stat.reaction_interruptions} "
         f"interruptions; {percent(k, n)}, 95% lower bound {100 * bound:.1f}%)",
         f"mean sentiment of those prompts {stat.reaction_sentiment_mean:+.2f}"],
        round(bound, 4), stat.tool)


def _slow(stat: ToolStat) -> Recommendation | None:
    n, k = stat.timed_calls, stat.slow_calls
    if stat.tool in SUBAGENT_TOOLS or n < MIN_TIMED_CALLS or k < MIN_SLOW_CALLS:
        return None
    bound = wilson_lower(k, n)
    if bound < SLOW_RATE:
        return None
    return Recommendation(
        "slow_tool",
        f"{stat.tool} calls are often slow: run long work in the background or narrow it.",
        [f"{k} of {n} timed calls took over a minute ({percent(k, n)}; 95% lower bound "
         f"{100 * bound:.1f}%)", f"latency p50 {stat.latency_p50_ms / 1000:.1f} s, "
         f"p95 {stat.latency_p95_ms / 1000:.1f} s"], round(bound, 4), stat.tool)


def _loops(report: ToolReport) -> list[Recommendation]:
    by_tool: dict[str, list] = defaultdict(list)
    for loop in report.loops:
        by_tool[loop.tool].append(loop)
    out = []
    for tool, loops in by_tool.items():
        waste = sum(lp.repeats - 1 for lp in loops)
        if waste < MIN_LOOP_WASTE:
            continue
        longest = max(loops, key=lambda lp: lp.repeats)
        out.append(Recommendation(
            "retry_loop",
            f"{tool} was called again and again with the same input and no progress: after "
            f"a failure, change the input or the approach instead of repeating the call.",
            [f"{_n(len(loops), 'loop')}, {waste} repeated calls without progress",
             f"longest: {longest.repeats} identical calls in session {longest.session_id} "
             f"from {longest.first_timestamp or '(no timestamp)'}: {longest.input_excerpt}"],
            round(saturating(waste, LOOP_HALF), 4), tool))
    return out


def _churn(report: ToolReport) -> list[Recommendation]:
    out = []
    for churn in report.churn:
        if len(out) == MAX_CHURN_FILES:
            break
        per_session = churn.edits / max(churn.sessions, 1)
        if churn.edits < MIN_CHURN_EDITS or per_session < MIN_EDITS_PER_SESSION:
            continue
        out.append(Recommendation(
            "edit_churn",
            f"{churn.path} is edited again and again: plan the change and make it in fewer, "
            f"larger edits (MultiEdit), or split the file.",
            [f"{churn.edits} edits in {_n(churn.sessions, 'session')} ({per_session:.1f} per "
             f"session), {churn.failed_edits} failed"],
            round(saturating(churn.edits - churn.sessions, CHURN_HALF), 4)))
    return out


def _switches(report: ToolReport) -> list[Recommendation]:
    """A pair (X failed, then Y succeeded) that is how failures of X usually end: judged
    against every failure of X followed by a call (its retries and switches)."""
    followed = {t.tool: t.retries + t.switches for t in report.tools}
    out = []
    for s in report.switches:
        n = followed.get(s.from_tool, 0)
        if s.count < MIN_SWITCHES or n == 0:
            continue
        bound = wilson_lower(s.successes, n)
        if bound < SWITCH_SUCCESS_RATE:
            continue
        out.append(Recommendation(
            "switch_after_failure",
            f"When {s.from_tool} fails, the work usually goes on with {s.to_tool}, which "
            f"succeeds: where that failure is predictable, use {s.to_tool} first.",
            [f"{s.successes} of {n} failed {s.from_tool} calls followed by another call were "
             f"followed by a successful {s.to_tool} ({percent(s.successes, n)}; 95% lower "
             f"bound {100 * bound:.1f}%)",
             f"{s.count} switches {s.from_tool} -> {s.to_tool}, {s.successes} succeeded"],
            round(bound, 4), s.from_tool))
    return out


def _subagents(report: ToolReport) -> list[Recommendation]:
    costly = [s for s in report.subagents if s.cost_usd > 0]
    cost = math.fsum(s.cost_usd for s in costly)
    if len(costly) < MIN_SUBAGENTS or cost < MIN_SUBAGENT_COST_USD:
        return []
    top = max(costly, key=lambda s: s.cost_usd)
    tokens = sum(s.tokens for s in costly)
    return [Recommendation(
        "costly_subagents",
        "Subagents cost much: give them narrower tasks, or use a smaller model for them.",
        [f"{len(costly)} subagent runs cost ${cost:,.2f} ({tokens:,} tokens; mean "
         f"${cost / len(costly):,.2f})",
         f"most expensive: ${top.cost_usd:,.2f}, {top.tokens:,} tokens, {top.messages} "
         f"records, {top.duration_seconds:,.0f} s (agent {top.agent_id}, session "
         f"{top.session_id})"], round(saturating(cost, COST_HALF_USD), 4),
        top.tool_name)]


def recommend(report: ToolReport) -> list[Recommendation]:
    """Every recommendation the report's evidence supports, strongest first."""
    out: list[Recommendation] = []
    for stat in report.tools:
        for rule in (_failing, _rejected, _negative, _slow):
            found = rule(stat)
            if found is not None:
                out.append(found)
        out.extend(_remedies(stat))
    out.extend(_loops(report))
    out.extend(_churn(report))
    out.extend(_switches(report))
    out.extend(_subagents(report))
    out.sort(key=lambda r: (-r.strength, r.kind, r.tool, r.text))
    return out
