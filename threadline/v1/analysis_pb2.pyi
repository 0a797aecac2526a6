from threadline.v1 import analysis_types_pb2 as _analysis_types_pb2
from threadline.v1 import common_pb2 as _common_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class GetThreadsRequest(_message.Message):
    __slots__ = ("session_id",)
    SESSION_ID_FIELD_NUMBER: _ClassVar[int]
    session_id: str
    def __init__(self, session_id: _Optional[str] = ...) -> None: ...

class ThreadNode(_message.Message):
    __slots__ = ("key", "uuid", "parent_uuid", "parent_source", "relation", "confidence", "type", "role", "timestamp", "agent_id", "is_sidechain", "excerpt", "source_path")
    KEY_FIELD_NUMBER: _ClassVar[int]
    UUID_FIELD_NUMBER: _ClassVar[int]
    PARENT_UUID_FIELD_NUMBER: _ClassVar[int]
    PARENT_SOURCE_FIELD_NUMBER: _ClassVar[int]
    RELATION_FIELD_NUMBER: _ClassVar[int]
    CONFIDENCE_FIELD_NUMBER: _ClassVar[int]
    TYPE_FIELD_NUMBER: _ClassVar[int]
    ROLE_FIELD_NUMBER: _ClassVar[int]
    TIMESTAMP_FIELD_NUMBER: _ClassVar[int]
    AGENT_ID_FIELD_NUMBER: _ClassVar[int]
    IS_SIDECHAIN_FIELD_NUMBER: _ClassVar[int]
    EXCERPT_FIELD_NUMBER: _ClassVar[int]
    SOURCE_PATH_FIELD_NUMBER: _ClassVar[int]
    key: str
    uuid: str
    parent_uuid: str
    parent_source: str
    relation: str
    confidence: float
    type: str
    role: str
    timestamp: str
    agent_id: str
    is_sidechain: bool
    excerpt: str
    source_path: str
    def __init__(self, key: _Optional[str] = ..., uuid: _Optional[str] = ..., parent_uuid: _Optional[str] = ..., parent_source: _Optional[str] = ..., relation: _Optional[str] = ..., confidence: _Optional[float] = ..., type: _Optional[str] = ..., role: _Optional[str] = ..., timestamp: _Optional[str] = ..., agent_id: _Optional[str] = ..., is_sidechain: _Optional[bool] = ..., excerpt: _Optional[str] = ..., source_path: _Optional[str] = ...) -> None: ...

class Branch(_message.Message):
    __slots__ = ("parent_uuid", "child_uuids")
    PARENT_UUID_FIELD_NUMBER: _ClassVar[int]
    CHILD_UUIDS_FIELD_NUMBER: _ClassVar[int]
    parent_uuid: str
    child_uuids: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, parent_uuid: _Optional[str] = ..., child_uuids: _Optional[_Iterable[str]] = ...) -> None: ...

class SubagentLink(_message.Message):
    __slots__ = ("tool_use_id", "agent_id", "use_message_key", "tool_name", "messages", "started_at", "finished_at", "duration_seconds", "tokens", "cost_usd", "session_id")
    TOOL_USE_ID_FIELD_NUMBER: _ClassVar[int]
    AGENT_ID_FIELD_NUMBER: _ClassVar[int]
    USE_MESSAGE_KEY_FIELD_NUMBER: _ClassVar[int]
    TOOL_NAME_FIELD_NUMBER: _ClassVar[int]
    MESSAGES_FIELD_NUMBER: _ClassVar[int]
    STARTED_AT_FIELD_NUMBER: _ClassVar[int]
    FINISHED_AT_FIELD_NUMBER: _ClassVar[int]
    DURATION_SECONDS_FIELD_NUMBER: _ClassVar[int]
    TOKENS_FIELD_NUMBER: _ClassVar[int]
    COST_USD_FIELD_NUMBER: _ClassVar[int]
    SESSION_ID_FIELD_NUMBER: _ClassVar[int]
    tool_use_id: str
    agent_id: str
    use_message_key: str
    tool_name: str
    messages: int
    started_at: str
    finished_at: str
    duration_seconds: float
    tokens: int
    cost_usd: float
    session_id: str
    def __init__(self, tool_use_id: _Optional[str] = ..., agent_id: _Optional[str] = ..., use_message_key: _Optional[str] = ..., tool_name: _Optional[str] = ..., messages: _Optional[int] = ..., started_at: _Optional[str] = ..., finished_at: _Optional[str] = ..., duration_seconds: _Optional[float] = ..., tokens: _Optional[int] = ..., cost_usd: _Optional[float] = ..., session_id: _Optional[str] = ...) -> None: ...

class Compaction(_message.Message):
    __slots__ = ("boundary_uuid", "logical_parent_uuid", "trigger", "pre_tokens", "timestamp")
    BOUNDARY_UUID_FIELD_NUMBER: _ClassVar[int]
    LOGICAL_PARENT_UUID_FIELD_NUMBER: _ClassVar[int]
    TRIGGER_FIELD_NUMBER: _ClassVar[int]
    PRE_TOKENS_FIELD_NUMBER: _ClassVar[int]
    TIMESTAMP_FIELD_NUMBER: _ClassVar[int]
    boundary_uuid: str
    logical_parent_uuid: str
    trigger: str
    pre_tokens: int
    timestamp: str
    def __init__(self, boundary_uuid: _Optional[str] = ..., logical_parent_uuid: _Optional[str] = ..., trigger: _Optional[str] = ..., pre_tokens: _Optional[int] = ..., timestamp: _Optional[str] = ...) -> None: ...

class GetThreadsResponse(_message.Message):
    __slots__ = ("session_id", "resumed_from", "resumed_by", "nodes", "branches", "subagents", "compactions", "segments")
    SESSION_ID_FIELD_NUMBER: _ClassVar[int]
    RESUMED_FROM_FIELD_NUMBER: _ClassVar[int]
    RESUMED_BY_FIELD_NUMBER: _ClassVar[int]
    NODES_FIELD_NUMBER: _ClassVar[int]
    BRANCHES_FIELD_NUMBER: _ClassVar[int]
    SUBAGENTS_FIELD_NUMBER: _ClassVar[int]
    COMPACTIONS_FIELD_NUMBER: _ClassVar[int]
    SEGMENTS_FIELD_NUMBER: _ClassVar[int]
    session_id: str
    resumed_from: str
    resumed_by: _containers.RepeatedScalarFieldContainer[str]
    nodes: _containers.RepeatedCompositeFieldContainer[ThreadNode]
    branches: _containers.RepeatedCompositeFieldContainer[Branch]
    subagents: _containers.RepeatedCompositeFieldContainer[SubagentLink]
    compactions: _containers.RepeatedCompositeFieldContainer[Compaction]
    segments: _containers.RepeatedCompositeFieldContainer[_analysis_types_pb2.Segment]
    def __init__(self, session_id: _Optional[str] = ..., resumed_from: _Optional[str] = ..., resumed_by: _Optional[_Iterable[str]] = ..., nodes: _Optional[_Iterable[_Union[ThreadNode, _Mapping]]] = ..., branches: _Optional[_Iterable[_Union[Branch, _Mapping]]] = ..., subagents: _Optional[_Iterable[_Union[SubagentLink, _Mapping]]] = ..., compactions: _Optional[_Iterable[_Union[Compaction, _Mapping]]] = ..., segments: _Optional[_Iterable[_Union[_analysis_types_pb2.Segment, _Mapping]]] = ...) -> None: ...

class GetSessionAnalysisRequest(_message.Message):
    __slots__ = ("session_id",)
    SESSION_ID_FIELD_NUMBER: _ClassVar[int]
    session_id: str
    def __init__(self, session_id: _Optional[str] = ...) -> None: ...

class SessionAnalysis(_message.Message):
    __slots__ = ("summary", "segments", "turns", "relationships", "intents")
    class IntentsEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: int
        def __init__(self, key: _Optional[str] = ..., value: _Optional[int] = ...) -> None: ...
    SUMMARY_FIELD_NUMBER: _ClassVar[int]
    SEGMENTS_FIELD_NUMBER: _ClassVar[int]
    TURNS_FIELD_NUMBER: _ClassVar[int]
    RELATIONSHIPS_FIELD_NUMBER: _ClassVar[int]
    INTENTS_FIELD_NUMBER: _ClassVar[int]
    summary: _analysis_types_pb2.SessionSummary
    segments: _containers.RepeatedCompositeFieldContainer[_analysis_types_pb2.Segment]
    turns: _containers.RepeatedCompositeFieldContainer[_analysis_types_pb2.TurnAnalysis]
    relationships: _containers.RepeatedCompositeFieldContainer[_analysis_types_pb2.Relationship]
    intents: _containers.ScalarMap[str, int]
    def __init__(self, summary: _Optional[_Union[_analysis_types_pb2.SessionSummary, _Mapping]] = ..., segments: _Optional[_Iterable[_Union[_analysis_types_pb2.Segment, _Mapping]]] = ..., turns: _Optional[_Iterable[_Union[_analysis_types_pb2.TurnAnalysis, _Mapping]]] = ..., relationships: _Optional[_Iterable[_Union[_analysis_types_pb2.Relationship, _Mapping]]] = ..., intents: _Optional[_Mapping[str, int]] = ...) -> None: ...

class ToolStatsRequest(_message.Message):
    __slots__ = ("project_key", "session_id", "since", "until", "timezone", "by")
    PROJECT_KEY_FIELD_NUMBER: _ClassVar[int]
    SESSION_ID_FIELD_NUMBER: _ClassVar[int]
    SINCE_FIELD_NUMBER: _ClassVar[int]
    UNTIL_FIELD_NUMBER: _ClassVar[int]
    TIMEZONE_FIELD_NUMBER: _ClassVar[int]
    BY_FIELD_NUMBER: _ClassVar[int]
    project_key: str
    session_id: str
    since: str
    until: str
    timezone: str
    by: str
    def __init__(self, project_key: _Optional[str] = ..., session_id: _Optional[str] = ..., since: _Optional[str] = ..., until: _Optional[str] = ..., timezone: _Optional[str] = ..., by: _Optional[str] = ...) -> None: ...

class ToolStat(_message.Message):
    __slots__ = ("tool", "group", "calls", "errors", "rejections", "interruptions", "timed_calls", "latency_p50_ms", "latency_p95_ms", "retries", "switches", "error_classes", "reactions", "reaction_sentiment_mean", "reaction_interruptions", "reaction_rejections")
    class ErrorClassesEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: int
        def __init__(self, key: _Optional[str] = ..., value: _Optional[int] = ...) -> None: ...
    TOOL_FIELD_NUMBER: _ClassVar[int]
    GROUP_FIELD_NUMBER: _ClassVar[int]
    CALLS_FIELD_NUMBER: _ClassVar[int]
    ERRORS_FIELD_NUMBER: _ClassVar[int]
    REJECTIONS_FIELD_NUMBER: _ClassVar[int]
    INTERRUPTIONS_FIELD_NUMBER: _ClassVar[int]
    TIMED_CALLS_FIELD_NUMBER: _ClassVar[int]
    LATENCY_P50_MS_FIELD_NUMBER: _ClassVar[int]
    LATENCY_P95_MS_FIELD_NUMBER: _ClassVar[int]
    RETRIES_FIELD_NUMBER: _ClassVar[int]
    SWITCHES_FIELD_NUMBER: _ClassVar[int]
    ERROR_CLASSES_FIELD_NUMBER: _ClassVar[int]
    REACTIONS_FIELD_NUMBER: _ClassVar[int]
    REACTION_SENTIMENT_MEAN_FIELD_NUMBER: _ClassVar[int]
    REACTION_INTERRUPTIONS_FIELD_NUMBER: _ClassVar[int]
    REACTION_REJECTIONS_FIELD_NUMBER: _ClassVar[int]
    tool: str
    group: str
    calls: int
    errors: int
    rejections: int
    interruptions: int
    timed_calls: int
    latency_p50_ms: float
    latency_p95_ms: float
    retries: int
    switches: int
    error_classes: _containers.ScalarMap[str, int]
    reactions: int
    reaction_sentiment_mean: float
    reaction_interruptions: int
    reaction_rejections: int
    def __init__(self, tool: _Optional[str] = ..., group: _Optional[str] = ..., calls: _Optional[int] = ..., errors: _Optional[int] = ..., rejections: _Optional[int] = ..., interruptions: _Optional[int] = ..., timed_calls: _Optional[int] = ..., latency_p50_ms: _Optional[float] = ..., latency_p95_ms: _Optional[float] = ..., retries: _Optional[int] = ..., switches: _Optional[int] = ..., error_classes: _Optional[_Mapping[str, int]] = ..., reactions: _Optional[int] = ..., reaction_sentiment_mean: _Optional[float] = ..., reaction_interruptions: _Optional[int] = ..., reaction_rejections: _Optional[int] = ...) -> None: ...

class ToolSequence(_message.Message):
    __slots__ = ("tools", "support", "confidence")
    TOOLS_FIELD_NUMBER: _ClassVar[int]
    SUPPORT_FIELD_NUMBER: _ClassVar[int]
    CONFIDENCE_FIELD_NUMBER: _ClassVar[int]
    tools: _containers.RepeatedScalarFieldContainer[str]
    support: int
    confidence: float
    def __init__(self, tools: _Optional[_Iterable[str]] = ..., support: _Optional[int] = ..., confidence: _Optional[float] = ...) -> None: ...

class ToolSwitch(_message.Message):
    __slots__ = ("from_tool", "to_tool", "count", "success_rate")
    FROM_TOOL_FIELD_NUMBER: _ClassVar[int]
    TO_TOOL_FIELD_NUMBER: _ClassVar[int]
    COUNT_FIELD_NUMBER: _ClassVar[int]
    SUCCESS_RATE_FIELD_NUMBER: _ClassVar[int]
    from_tool: str
    to_tool: str
    count: int
    success_rate: float
    def __init__(self, from_tool: _Optional[str] = ..., to_tool: _Optional[str] = ..., count: _Optional[int] = ..., success_rate: _Optional[float] = ...) -> None: ...

class ToolLoop(_message.Message):
    __slots__ = ("session_id", "tool", "input_excerpt", "repeats", "first_key", "first_timestamp")
    SESSION_ID_FIELD_NUMBER: _ClassVar[int]
    TOOL_FIELD_NUMBER: _ClassVar[int]
    INPUT_EXCERPT_FIELD_NUMBER: _ClassVar[int]
    REPEATS_FIELD_NUMBER: _ClassVar[int]
    FIRST_KEY_FIELD_NUMBER: _ClassVar[int]
    FIRST_TIMESTAMP_FIELD_NUMBER: _ClassVar[int]
    session_id: str
    tool: str
    input_excerpt: str
    repeats: int
    first_key: str
    first_timestamp: str
    def __init__(self, session_id: _Optional[str] = ..., tool: _Optional[str] = ..., input_excerpt: _Optional[str] = ..., repeats: _Optional[int] = ..., first_key: _Optional[str] = ..., first_timestamp: _Optional[str] = ...) -> None: ...

class EditChurn(_message.Message):
    __slots__ = ("path", "edits", "sessions", "failed_edits")
    PATH_FIELD_NUMBER: _ClassVar[int]
    EDITS_FIELD_NUMBER: _ClassVar[int]
    SESSIONS_FIELD_NUMBER: _ClassVar[int]
    FAILED_EDITS_FIELD_NUMBER: _ClassVar[int]
    path: str
    edits: int
    sessions: int
    failed_edits: int
    def __init__(self, path: _Optional[str] = ..., edits: _Optional[int] = ..., sessions: _Optional[int] = ..., failed_edits: _Optional[int] = ...) -> None: ...

class TimeBucket(_message.Message):
    __slots__ = ("slot", "calls", "errors")
    SLOT_FIELD_NUMBER: _ClassVar[int]
    CALLS_FIELD_NUMBER: _ClassVar[int]
    ERRORS_FIELD_NUMBER: _ClassVar[int]
    slot: int
    calls: int
    errors: int
    def __init__(self, slot: _Optional[int] = ..., calls: _Optional[int] = ..., errors: _Optional[int] = ...) -> None: ...

class Recommendation(_message.Message):
    __slots__ = ("kind", "text", "evidence", "strength", "tool")
    KIND_FIELD_NUMBER: _ClassVar[int]
    TEXT_FIELD_NUMBER: _ClassVar[int]
    EVIDENCE_FIELD_NUMBER: _ClassVar[int]
    STRENGTH_FIELD_NUMBER: _ClassVar[int]
    TOOL_FIELD_NUMBER: _ClassVar[int]
    kind: str
    text: str
    evidence: _containers.RepeatedScalarFieldContainer[str]
    strength: float
    tool: str
    def __init__(self, kind: _Optional[str] = ..., text: _Optional[str] = ..., evidence: _Optional[_Iterable[str]] = ..., strength: _Optional[float] = ..., tool: _Optional[str] = ...) -> None: ...

class RecommendationList(_message.Message):
    __slots__ = ("recommendations",)
    RECOMMENDATIONS_FIELD_NUMBER: _ClassVar[int]
    recommendations: _containers.RepeatedCompositeFieldContainer[Recommendation]
    def __init__(self, recommendations: _Optional[_Iterable[_Union[Recommendation, _Mapping]]] = ...) -> None: ...

class ToolStats(_message.Message):
    __slots__ = ("rows", "total", "sequences", "switches", "loops", "churn", "subagents", "by_hour", "by_weekday", "timezone", "recommendations")
    ROWS_FIELD_NUMBER: _ClassVar[int]
    TOTAL_FIELD_NUMBER: _ClassVar[int]
    SEQUENCES_FIELD_NUMBER: _ClassVar[int]
    SWITCHES_FIELD_NUMBER: _ClassVar[int]
    LOOPS_FIELD_NUMBER: _ClassVar[int]
    CHURN_FIELD_NUMBER: _ClassVar[int]
    SUBAGENTS_FIELD_NUMBER: _ClassVar[int]
    BY_HOUR_FIELD_NUMBER: _ClassVar[int]
    BY_WEEKDAY_FIELD_NUMBER: _ClassVar[int]
    TIMEZONE_FIELD_NUMBER: _ClassVar[int]
    RECOMMENDATIONS_FIELD_NUMBER: _ClassVar[int]
    rows: _containers.RepeatedCompositeFieldContainer[ToolStat]
    total: ToolStat
    sequences: _containers.RepeatedCompositeFieldContainer[ToolSequence]
    switches: _containers.RepeatedCompositeFieldContainer[ToolSwitch]
    loops: _containers.RepeatedCompositeFieldContainer[ToolLoop]
    churn: _containers.RepeatedCompositeFieldContainer[EditChurn]
    subagents: _containers.RepeatedCompositeFieldContainer[SubagentLink]
    by_hour: _containers.RepeatedCompositeFieldContainer[TimeBucket]
    by_weekday: _containers.RepeatedCompositeFieldContainer[TimeBucket]
    timezone: str
    recommendations: _containers.RepeatedCompositeFieldContainer[Recommendation]
    def __init__(self, rows: _Optional[_Iterable[_Union[ToolStat, _Mapping]]] = ..., total: _Optional[_Union[ToolStat, _Mapping]] = ..., sequences: _Optional[_Iterable[_Union[ToolSequence, _Mapping]]] = ..., switches: _Optional[_Iterable[_Union[ToolSwitch, _Mapping]]] = ..., loops: _Optional[_Iterable[_Union[ToolLoop, _Mapping]]] = ..., churn: _Optional[_Iterable[_Union[EditChurn, _Mapping]]] = ..., subagents: _Optional[_Iterable[_Union[SubagentLink, _Mapping]]] = ..., by_hour: _Optional[_Iterable[_Union[TimeBucket, _Mapping]]] = ..., by_weekday: _Optional[_Iterable[_Union[TimeBucket, _Mapping]]] = ..., timezone: _Optional[str] = ..., recommendations: _Optional[_Iterable[_Union[Recommendation, _Mapping]]] = ...) -> None: ...
