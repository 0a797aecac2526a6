"""Plain results of analysis, mirroring threadline/v1/analysis_types.proto and analysis.proto.

Domain modules (context, segments, relationships, tool_patterns) produce and consume these;
`services/analysis/wire.py` maps them to and from protobuf, `services/store` to and from rows.
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(slots=True)
class PromptAnalysis:
    """Context figures of one real user prompt (see services/analysis/context.py)."""

    intent: str
    intent_confidence: float
    intent_evidence: str
    sentiment: float  # VADER compound, -1..1
    urgency: float  # 0..1
    clarity: float  # 0..1
    complexity: float  # readability grade, see context.py
    similarity_previous: float  # 0..1, with the previous real prompt of the session
    word_count: int


@dataclass(slots=True)
class Turn:
    """A stored real user prompt: its message and its figures."""

    key: str
    session_id: str
    timestamp: str
    analysis: PromptAnalysis
    segment_index: int = 0
    excerpt: str = ""


@dataclass(slots=True)
class Segment:
    session_id: str
    index: int
    start_key: str = ""
    end_key: str = ""
    first_timestamp: str = ""
    last_timestamp: str = ""
    title: str = ""
    keywords: list[str] = field(default_factory=list)
    message_count: int = 0
    prompt_count: int = 0
    tool_call_count: int = 0
    boundary_reason: str = "start"
    boundary_score: float = 0.0
    coherence: float = 1.0
    merged: bool = False


@dataclass(slots=True)
class Relationship:
    source_key: str  # the later message
    target_key: str  # the earlier message it relates to
    kind: str  # response, tool_continuation, reference, topic_follow_up
    confidence: float
    evidence: str
    session_id: str = ""


@dataclass(slots=True)
class SessionSummary:
    """Session-level figures (threadline.v1.SessionSummary), kept up to date as records arrive."""

    session_id: str
    project_key: str = ""
    messages: int = 0
    prompts: int = 0
    assistant_messages: int = 0
    interruptions: int = 0
    response_seconds_sum: float = 0.0
    responses: int = 0
    first_timestamp: str = ""
    last_timestamp: str = ""
    branches: int = 0
    compactions: int = 0
    subagents: int = 0
    resumed_from: str = ""
    sentiment_sum: float = 0.0
    segments: int = 0


@dataclass(slots=True)
class SessionChanges:
    """What a run of records changed in one session: written by the store with the batch."""

    session_id: str
    segments: dict[int, Segment] = field(default_factory=dict)
    # Indices of segments merged into the one before them, in order (applied first).
    merged: list[int] = field(default_factory=list)
    turns: list[Turn] = field(default_factory=list)
    relationships: list[Relationship] = field(default_factory=list)
    summary: SessionSummary | None = None
    thread_changed: bool = False


@dataclass(slots=True)
class ToolFact:
    """One tool call with what tool-usage analysis needs to know about it (store: tool_facts)."""

    tool_use_id: str
    session_id: str
    project_key: str
    name: str
    input_json: bytes = b""
    is_error: bool = False
    # Text of the tool_result (first 2,000 characters), "" when there is none yet.
    result_text: str = ""
    started_at: str = ""
    finished_at: str = ""
    # The tool's own run time as its result states it (Codex), None when it states none.
    duration_seconds: float | None = None
    # Order of the tool_use within its session (messages.seq of the line holding it).
    sequence: int = 0
    use_message_key: str = ""
    agent_id: str = ""
    # The subagent's own responses (each counted once), when the call started one.
    subagent_messages: int = 0
    subagent_tokens: int = 0
    subagent_cost_usd: float = 0.0
    # The next real user prompt after the result, when there is one before the next call.
    reaction_intent: str = ""
    reaction_sentiment: float | None = None
    # Who asked for the call: "" for the main conversation, else the subagent's agentId
    # ("sidechain" for an inline 1.0.x subagent); each caller is its own run of calls.
    caller: str = ""
