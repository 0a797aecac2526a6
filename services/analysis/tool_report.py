"""Plain results of tool-usage analysis, mirroring ToolStats and its parts in
protos/threadline/v1/analysis.proto (services/analysis/tool_wire.py maps them).

`tool_patterns.summarise` produces them, `recommendations.recommend` reads them. A few fields
exist only here (marked), for the recommendations and the CLI; the wire leaves them out.
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(slots=True)
class ToolStat:
    tool: str
    group: str = ""  # the session or project with `by` session / project
    calls: int = 0
    errors: int = 0
    rejections: int = 0
    interruptions: int = 0
    timed_calls: int = 0
    latency_p50_ms: float = 0.0
    latency_p95_ms: float = 0.0
    retries: int = 0
    switches: int = 0
    error_classes: dict[str, int] = field(default_factory=dict)
    reactions: int = 0
    reaction_sentiment_mean: float = 0.0
    reaction_interruptions: int = 0
    reaction_rejections: int = 0
    # Only here: timed calls slower than tool_patterns.SLOW_CALL_MS, and sessions with a call.
    slow_calls: int = 0
    sessions: int = 0

    @property
    def failures(self) -> int:
        """Errors that are the tool's own, not a person's decision (rejection, interruption).
        The figure the report's FAILED column and the failing_tool recommendation both show."""
        return self.errors - self.rejections - self.interruptions


def percent(k: int, n: int) -> str:
    """k of n as the report and its recommendations print a share: one decimal."""
    return f"{100 * k / n:.1f}%" if n else "0.0%"


@dataclass(slots=True)
class ToolSequence:
    tools: list[str]
    support: int
    confidence: float


@dataclass(slots=True)
class ToolSwitch:
    from_tool: str
    to_tool: str
    count: int
    success_rate: float
    successes: int = 0  # only here: count * success_rate, exactly


@dataclass(slots=True)
class ToolLoop:
    session_id: str
    tool: str
    input_excerpt: str
    repeats: int
    first_key: str = ""
    first_timestamp: str = ""


@dataclass(slots=True)
class EditChurn:
    path: str
    edits: int
    sessions: int
    failed_edits: int


@dataclass(slots=True)
class SubagentLink:
    tool_use_id: str
    agent_id: str
    use_message_key: str = ""
    tool_name: str = ""
    messages: int = 0
    started_at: str = ""
    finished_at: str = ""
    duration_seconds: float = 0.0
    tokens: int = 0
    cost_usd: float = 0.0
    session_id: str = ""


@dataclass(slots=True)
class TimeBucket:
    slot: int  # hour 0..23 or ISO weekday 1 (Monday)..7
    calls: int = 0
    errors: int = 0


@dataclass(slots=True)
class Recommendation:
    kind: str
    text: str
    evidence: list[str]
    strength: float  # 0..1, from the evidence (services/analysis/recommendations.py)
    tool: str = ""


@dataclass(slots=True)
class ToolReport:
    rows: list[ToolStat]
    total: ToolStat
    sequences: list[ToolSequence] = field(default_factory=list)
    switches: list[ToolSwitch] = field(default_factory=list)
    loops: list[ToolLoop] = field(default_factory=list)
    churn: list[EditChurn] = field(default_factory=list)
    subagents: list[SubagentLink] = field(default_factory=list)
    by_hour: list[TimeBucket] = field(default_factory=list)
    by_weekday: list[TimeBucket] = field(default_factory=list)
    timezone: str = "UTC"
    recommendations: list[Recommendation] = field(default_factory=list)
    # Only here: what `rows` are keyed by, and one row per tool whatever `by` is (the
    # recommendations judge tools, not a tool within one session).
    by: str = "tool"
    tools: list[ToolStat] = field(default_factory=list)
