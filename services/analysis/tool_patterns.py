"""Tool usage: per tool (and per session or project), error classes, latency, retries and
switches, frequent sequences, loops, edit churn, subagents, reactions and time of day.

Pure functions over `ToolFact`s (threadline/storage/tools.py reads them); nothing here knows
about SQL or gRPC. Every figure is described in docs/analysis.md, "Tool usage".

A session's calls form one *run* per caller (the main conversation, each subagent): calls are
ordered by the store sequence of the message that asked for them, and "the next call" is the
next one of the same run, so a subagent's calls never interleave with its parent's.
"""

from __future__ import annotations

import math
import re
from collections import Counter, defaultdict
from collections.abc import Iterable, Sequence
from datetime import datetime
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import orjson

from services.analysis.recommendations import recommend
from services.analysis.tool_report import (
    EditChurn,
    SubagentLink,
    TimeBucket,
    ToolLoop,
    ToolReport,
    ToolSequence,
    ToolStat,
    ToolSwitch,
)
from threadline.domain.analysis import ToolFact
from threadline.domain.timestamps import parse_timestamp

GROUPINGS = ("tool", "session", "project")
UNKNOWN_TOOL = "(unknown)"
TOTAL = "(all)"
# Sequences: n-grams of 2..4 consecutive calls of a run, kept from this many occurrences.
SEQUENCE_LENGTHS = (2, 3, 4)
MIN_SEQUENCE_SUPPORT = 5
MAX_SEQUENCES = 40
# Loops: this many identical calls in a row without progress.
MIN_LOOP_REPEATS = 3
LOOP_EXCERPT_CHARS = 120
# Edit churn: files edited at least this often, the most edited first.
MIN_CHURN_EDITS = 2
MAX_CHURN = 20
MAX_SWITCHES = 50
# A timed call slower than this is a slow call (ToolStat.slow_calls).
SLOW_CALL_MS = 60_000.0


# --- error classes ---------------------------------------------------------------------------

# Classes of an erroring call's result text, tried in this order (the first that matches
# wins) on the first HEAD_CHARS characters, lower-cased: a long command output can quote
# anything further down. Chosen from the is_error results of the real transcripts (see
# docs/analysis.md for the counts); `command_failed` also takes any other error of a shell
# tool, `other` what is left.
HEAD_CHARS = 400
ERROR_CLASSES: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("user_rejected", ("the user doesn't want to proceed", "the user doesn't want to take",
                       "user rejected", "rejected by user", "rejected by the user")),
    ("interrupted", ("[request interrupted by user", "interrupted by user",
                     "aborted by user", "cancelled by user")),
    ("not_read_first", ("file has not been read yet",)),
    ("stale_read", ("has been modified since read", "modified since it was read")),
    ("string_not_found", ("string to replace not found", "could not find the string",
                          "old_string not found", "0 occurrences found",
                          "failed to find expected lines")),
    ("ambiguous_match", ("but replace_all is false", "expected 1 occurrence")),
    ("no_change", ("no changes to make",)),
    ("sibling_failed", ("sibling tool call errored",)),
    ("validation", ("inputvalidationerror", "invalid input", "no such tool available",
                    "required parameter", "invalid arguments", "unknown tool",
                    "not found. available", "invalid_request")),
    ("too_large", ("exceeds maximum allowed", "too large to")),
    ("timeout", ("timed out", "timeout", "etimedout")),
    ("network", ("request failed with status code", "could not translate host name",
                 "connection refused", "econnrefused", "enotfound", "getaddrinfo",
                 "certificate", "network is unreachable", "could not resolve host",
                 "econnreset")),
    ("permission_denied", ("permission denied", "operation not permitted", "requires approval",
                           "requested permissions to",
                           "was blocked", "eacces", "not allowed", "access denied")),
    ("file_not_found", ("file does not exist", "no such file or directory", "enoent",
                        "eisdir", "is a directory", "not a directory", "cannot access",
                        "path does not exist", "directory does not exist")),
)
_EXIT_CODE = re.compile(r"(?:exit code|exited with code|exit status)[:\s]+[1-9]\d*")
# Tools that run shell commands (Claude Code, Codex, Gemini CLI): any other error of theirs
# is a command that failed.
SHELL_TOOLS = frozenset({"Bash", "BashOutput", "shell", "shell_command", "exec_command",
                         "write_stdin", "local_shell", "local_shell_call", "run_shell_command",
                         "container.exec"})
USER_DECISIONS = frozenset({"user_rejected", "interrupted"})


def classify_error(tool: str, text: str) -> str:
    """The class of an erroring call from its result text (ERROR_CLASSES, then
    command_failed, then other)."""
    head = text[:HEAD_CHARS].lower()
    for name, cues in ERROR_CLASSES:
        if any(cue in head for cue in cues):
            return name
    if tool in SHELL_TOOLS or _EXIT_CODE.search(head) or "command not found" in head \
            or "syntax error" in head:
        return "command_failed"
    return "other"


# --- helpers ---------------------------------------------------------------------------------

def tool_name(fact: ToolFact) -> str:
    return fact.name or UNKNOWN_TOOL


def percentile(ordered: Sequence[float], q: float) -> float:
    """The q-th quantile (0..1) of sorted values, interpolated linearly between the closest
    ranks (numpy's default); 0.0 for no values."""
    if not ordered:
        return 0.0
    at = (len(ordered) - 1) * q
    low = math.floor(at)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (at - low)


def _times(fact: ToolFact) -> tuple[datetime | None, float | None]:
    """(when the call was made, else when its result came; how long it took in seconds).

    The time taken is the run time the result states when it states one (Codex writes the
    call and its output together, often with one timestamp, and states the run time in the
    output); otherwise the seconds from the call to its result, None unless both are known
    and in order."""
    start, end = parse_timestamp(fact.started_at), parse_timestamp(fact.finished_at)
    if fact.duration_seconds is not None:
        return start or end, fact.duration_seconds
    if start is None or end is None or end < start:
        return start or end, None
    return start, (end - start).total_seconds()


def _zone(timezone: str) -> ZoneInfo:
    try:
        return ZoneInfo(timezone or "UTC")
    except (ZoneInfoNotFoundError, ValueError) as exc:
        raise ValueError(f"timezone: unknown IANA time zone {timezone!r}") from exc


def _runs(facts: Iterable[ToolFact]) -> list[list[ToolFact]]:
    """The calls of each (session, caller), in order."""
    runs: dict[tuple[str, str], list[ToolFact]] = defaultdict(list)
    for fact in facts:
        runs[(fact.session_id, fact.caller)].append(fact)
    for run in runs.values():
        run.sort(key=lambda f: (f.sequence, f.started_at, f.tool_use_id))
    return list(runs.values())


# --- per tool --------------------------------------------------------------------------------

class _Tally:
    """What one ToolStat row adds up."""

    def __init__(self) -> None:
        self.calls = self.errors = self.retries = self.switches = 0
        self.classes: Counter[str] = Counter()
        self.latencies: list[float] = []
        self.sessions: set[str] = set()
        self.reactions = self.reaction_interruptions = self.reaction_rejections = 0
        self.sentiments: list[float] = []

    def add(self, fact: ToolFact, error_class: str, seconds: float | None,
            after: str) -> None:
        self.calls += 1
        self.sessions.add(fact.session_id)
        if fact.is_error:
            self.errors += 1
            self.classes[error_class] += 1
        if seconds is not None:
            self.latencies.append(seconds * 1000.0)
        if after == "retry":
            self.retries += 1
        elif after == "switch":
            self.switches += 1
        # The marker Claude Code writes when a call is interrupted is that interruption (in
        # `interruptions`), not a reaction to a result.
        own_marker = error_class == "interrupted" and fact.reaction_intent == "interruption"
        if (fact.reaction_intent or fact.reaction_sentiment is not None) and not own_marker:
            self.reactions += 1
            if fact.reaction_sentiment is not None:
                self.sentiments.append(fact.reaction_sentiment)
            self.reaction_interruptions += fact.reaction_intent == "interruption"
            self.reaction_rejections += fact.reaction_intent == "rejection"

    def stat(self, tool: str, group: str = "") -> ToolStat:
        ordered = sorted(self.latencies)
        return ToolStat(
            tool=tool, group=group, calls=self.calls, errors=self.errors,
            rejections=self.classes["user_rejected"], interruptions=self.classes["interrupted"],
            timed_calls=len(ordered), latency_p50_ms=round(percentile(ordered, 0.5), 3),
            latency_p95_ms=round(percentile(ordered, 0.95), 3), retries=self.retries,
            switches=self.switches, error_classes=dict(self.classes.most_common()),
            reactions=self.reactions,
            reaction_sentiment_mean=(round(math.fsum(self.sentiments) / len(self.sentiments), 4)
                                     if self.sentiments else 0.0),
            reaction_interruptions=self.reaction_interruptions,
            reaction_rejections=self.reaction_rejections,
            slow_calls=sum(ms > SLOW_CALL_MS for ms in ordered), sessions=len(self.sessions))


def _rows(tallies: dict[tuple[str, str], _Tally]) -> list[ToolStat]:
    rows = [t.stat(tool, group) for (group, tool), t in tallies.items()]
    rows.sort(key=lambda r: (r.group, -r.calls, r.tool))
    return rows


# --- sequences, switches, loops --------------------------------------------------------------

def _sequences(runs: list[list[ToolFact]]) -> list[ToolSequence]:
    """n-grams (SEQUENCE_LENGTHS) of consecutive tools within a run; support = occurrences,
    confidence = support / occurrences of its first n-1 tools followed by any call."""
    grams: Counter[tuple[str, ...]] = Counter()
    prefixes: Counter[tuple[str, ...]] = Counter()
    for run in runs:
        names = [tool_name(f) for f in run]
        for n in SEQUENCE_LENGTHS:
            for i in range(len(names) - n + 1):
                gram = tuple(names[i:i + n])
                grams[gram] += 1
                prefixes[gram[:-1]] += 1
    kept = [ToolSequence(list(g), s, round(s / prefixes[g[:-1]], 4))
            for g, s in grams.items() if s >= MIN_SEQUENCE_SUPPORT]
    kept.sort(key=lambda q: (-q.support, -len(q.tools), -q.confidence, q.tools))
    return kept[:MAX_SEQUENCES]


def _is_failure(fact: ToolFact, classes: dict[str, str]) -> bool:
    return fact.is_error and classes[fact.tool_use_id] not in USER_DECISIONS


def _after_failures(runs: list[list[ToolFact]], classes: dict[str, str]
                    ) -> tuple[dict[str, str], list[ToolSwitch]]:
    """What followed each failure (an error that is not a rejection or an interruption):
    "retry" (the next call of the run used the same tool) or "switch" (another tool), and
    the switches counted per pair with how often that next call succeeded."""
    after: dict[str, str] = {}
    pairs: dict[tuple[str, str], list[int]] = defaultdict(lambda: [0, 0])
    for run in runs:
        for fact, nxt in zip(run, run[1:], strict=False):
            if not _is_failure(fact, classes):
                continue
            if tool_name(nxt) == tool_name(fact):
                after[fact.tool_use_id] = "retry"
                continue
            after[fact.tool_use_id] = "switch"
            pair = pairs[(tool_name(fact), tool_name(nxt))]
            pair[0] += 1
            pair[1] += not nxt.is_error
    switches = [ToolSwitch(a, b, n, round(ok / n, 4), ok) for (a, b), (n, ok) in pairs.items()]
    switches.sort(key=lambda s: (-s.count, -s.success_rate, s.from_tool, s.to_tool))
    return after, switches[:MAX_SWITCHES]


def _loops(runs: list[list[ToolFact]]) -> list[ToolLoop]:
    """Runs of MIN_LOOP_REPEATS or more consecutive calls of one tool with byte-identical
    input where no repeat made progress: each repeat either failed or returned exactly the
    result of the call before it."""
    loops = []
    for run in runs:
        start = 0
        for i in range(1, len(run) + 1):
            if i < len(run):
                prev, cur = run[i - 1], run[i]
                same = (cur.name == prev.name and cur.input_json == prev.input_json
                        and (cur.is_error or cur.result_text == prev.result_text))
                if same:
                    continue
            if i - start >= MIN_LOOP_REPEATS:
                first = run[start]
                loops.append(ToolLoop(
                    session_id=first.session_id, tool=tool_name(first),
                    input_excerpt=first.input_json[:LOOP_EXCERPT_CHARS].decode("utf-8", "replace"),
                    repeats=i - start, first_key=first.use_message_key,
                    first_timestamp=first.started_at))
            start = i
    loops.sort(key=lambda lp: (-lp.repeats, lp.session_id, lp.first_timestamp))
    return loops


# --- edit churn ------------------------------------------------------------------------------

# Tools that change a file, and where their input names it (Claude Code, Gemini CLI; Codex's
# apply_patch names its files in the patch text).
EDIT_TOOLS = frozenset({"Edit", "MultiEdit", "Write", "NotebookEdit", "replace", "write_file",
                        "edit_file", "apply_patch"})
PATH_KEYS = ("file_path", "notebook_path", "filePath", "absolute_path", "path")
_PATCH_FILE = re.compile(r"^\*\*\* (?:Update|Add|Delete) File: (.+)$", re.MULTILINE)


def edited_paths(fact: ToolFact) -> list[str]:
    """The files an edit call changes, read from its input ([] when it names none)."""
    if fact.name not in EDIT_TOOLS or not fact.input_json:
        return []
    try:
        data = orjson.loads(fact.input_json)
    except orjson.JSONDecodeError:
        data = fact.input_json.decode("utf-8", "replace")
    if isinstance(data, dict):
        for key in PATH_KEYS:
            value = data.get(key)
            if isinstance(value, str) and value.strip():
                return [value.strip()]
        data = data.get("input") or data.get("patch") or ""
    if isinstance(data, str):
        return list(dict.fromkeys(p.strip() for p in _PATCH_FILE.findall(data)))
    return []


def _churn(facts: Iterable[ToolFact]) -> list[EditChurn]:
    edits: Counter[str] = Counter()
    failed: Counter[str] = Counter()
    sessions: dict[str, set[str]] = defaultdict(set)
    for fact in facts:
        for path in edited_paths(fact):
            edits[path] += 1
            failed[path] += fact.is_error
            sessions[path].add(fact.session_id)
    out = [EditChurn(p, n, len(sessions[p]), failed[p]) for p, n in edits.items()
           if n >= MIN_CHURN_EDITS]
    out.sort(key=lambda c: (-c.edits, -c.failed_edits, c.path))
    return out[:MAX_CHURN]


# --- subagents, time of day ------------------------------------------------------------------

def subagent_link(fact: ToolFact) -> SubagentLink:
    """The subagent a Task/Agent call started, with its duration, tokens and cost."""
    seconds = _times(fact)[1]
    return SubagentLink(
        tool_use_id=fact.tool_use_id, agent_id=fact.agent_id,
        use_message_key=fact.use_message_key, tool_name=fact.name,
        messages=fact.subagent_messages, started_at=fact.started_at,
        finished_at=fact.finished_at, duration_seconds=round(seconds or 0.0, 3),
        tokens=fact.subagent_tokens, cost_usd=fact.subagent_cost_usd,
        session_id=fact.session_id)


def _local(moment: datetime | None, zone: ZoneInfo) -> datetime | None:
    if moment is None:
        return None
    try:
        return moment.astimezone(zone)
    except OverflowError:  # 0001-01-01T00:00:00Z has no local time west of UTC
        return None


# --- the report ------------------------------------------------------------------------------

def summarise(facts: Iterable[ToolFact], by: str = "tool", timezone: str = "UTC") -> ToolReport:
    """The tool-usage report of the calls, with its recommendations.

    Raises ValueError for an unknown grouping or time zone.
    """
    if by not in GROUPINGS:
        raise ValueError(f"by: expected one of {', '.join(GROUPINGS)}, not {by!r}")
    zone = _zone(timezone)
    facts = list(facts)
    runs = _runs(facts)
    classes = {f.tool_use_id: classify_error(f.name, f.result_text) for f in facts
               if f.is_error}
    after, switches = _after_failures(runs, classes)
    per_tool: dict[tuple[str, str], _Tally] = defaultdict(_Tally)
    grouped: dict[tuple[str, str], _Tally] = defaultdict(_Tally)
    total = _Tally()
    hours = [TimeBucket(h) for h in range(24)]
    weekdays = [TimeBucket(d) for d in range(1, 8)]
    for fact in facts:
        name, error_class = tool_name(fact), classes.get(fact.tool_use_id, "")
        moment, seconds = _times(fact)
        then = after.get(fact.tool_use_id, "")
        for tally in (per_tool[("", name)], total):
            tally.add(fact, error_class, seconds, then)
        if by != "tool":
            group = fact.session_id if by == "session" else fact.project_key
            grouped[(group, name)].add(fact, error_class, seconds, then)
        local = _local(moment, zone)
        if local is not None:
            for bucket in (hours[local.hour], weekdays[local.isoweekday() - 1]):
                bucket.calls += 1
                bucket.errors += fact.is_error
    tools = _rows(per_tool)
    report = ToolReport(
        rows=tools if by == "tool" else _rows(grouped), total=total.stat(TOTAL),
        sequences=_sequences(runs), switches=switches, loops=_loops(runs),
        churn=_churn(facts), subagents=[subagent_link(f) for f in facts if f.agent_id],
        by_hour=hours, by_weekday=weekdays, timezone=timezone or "UTC", by=by, tools=tools)
    report.recommendations = recommend(report)
    return report
