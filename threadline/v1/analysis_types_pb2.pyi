from google.protobuf.internal import containers as _containers
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class Segment(_message.Message):
    __slots__ = ("session_id", "index", "start_key", "end_key", "first_timestamp", "last_timestamp", "title", "keywords", "message_count", "prompt_count", "tool_call_count", "boundary_reason", "boundary_score", "coherence", "merged")
    SESSION_ID_FIELD_NUMBER: _ClassVar[int]
    INDEX_FIELD_NUMBER: _ClassVar[int]
    START_KEY_FIELD_NUMBER: _ClassVar[int]
    END_KEY_FIELD_NUMBER: _ClassVar[int]
    FIRST_TIMESTAMP_FIELD_NUMBER: _ClassVar[int]
    LAST_TIMESTAMP_FIELD_NUMBER: _ClassVar[int]
    TITLE_FIELD_NUMBER: _ClassVar[int]
    KEYWORDS_FIELD_NUMBER: _ClassVar[int]
    MESSAGE_COUNT_FIELD_NUMBER: _ClassVar[int]
    PROMPT_COUNT_FIELD_NUMBER: _ClassVar[int]
    TOOL_CALL_COUNT_FIELD_NUMBER: _ClassVar[int]
    BOUNDARY_REASON_FIELD_NUMBER: _ClassVar[int]
    BOUNDARY_SCORE_FIELD_NUMBER: _ClassVar[int]
    COHERENCE_FIELD_NUMBER: _ClassVar[int]
    MERGED_FIELD_NUMBER: _ClassVar[int]
    session_id: str
    index: int
    start_key: str
    end_key: str
    first_timestamp: str
    last_timestamp: str
    title: str
    keywords: _containers.RepeatedScalarFieldContainer[str]
    message_count: int
    prompt_count: int
    tool_call_count: int
    boundary_reason: str
    boundary_score: float
    coherence: float
    merged: bool
    def __init__(self, session_id: _Optional[str] = ..., index: _Optional[int] = ..., start_key: _Optional[str] = ..., end_key: _Optional[str] = ..., first_timestamp: _Optional[str] = ..., last_timestamp: _Optional[str] = ..., title: _Optional[str] = ..., keywords: _Optional[_Iterable[str]] = ..., message_count: _Optional[int] = ..., prompt_count: _Optional[int] = ..., tool_call_count: _Optional[int] = ..., boundary_reason: _Optional[str] = ..., boundary_score: _Optional[float] = ..., coherence: _Optional[float] = ..., merged: _Optional[bool] = ...) -> None: ...

class TurnAnalysis(_message.Message):
    __slots__ = ("key", "session_id", "timestamp", "intent", "intent_confidence", "intent_evidence", "sentiment", "urgency", "clarity", "complexity", "similarity_previous", "word_count", "segment_index", "excerpt")
    KEY_FIELD_NUMBER: _ClassVar[int]
    SESSION_ID_FIELD_NUMBER: _ClassVar[int]
    TIMESTAMP_FIELD_NUMBER: _ClassVar[int]
    INTENT_FIELD_NUMBER: _ClassVar[int]
    INTENT_CONFIDENCE_FIELD_NUMBER: _ClassVar[int]
    INTENT_EVIDENCE_FIELD_NUMBER: _ClassVar[int]
    SENTIMENT_FIELD_NUMBER: _ClassVar[int]
    URGENCY_FIELD_NUMBER: _ClassVar[int]
    CLARITY_FIELD_NUMBER: _ClassVar[int]
    COMPLEXITY_FIELD_NUMBER: _ClassVar[int]
    SIMILARITY_PREVIOUS_FIELD_NUMBER: _ClassVar[int]
    WORD_COUNT_FIELD_NUMBER: _ClassVar[int]
    SEGMENT_INDEX_FIELD_NUMBER: _ClassVar[int]
    EXCERPT_FIELD_NUMBER: _ClassVar[int]
    key: str
    session_id: str
    timestamp: str
    intent: str
    intent_confidence: float
    intent_evidence: str
    sentiment: float
    urgency: float
    clarity: float
    complexity: float
    similarity_previous: float
    word_count: int
    segment_index: int
    excerpt: str
    def __init__(self, key: _Optional[str] = ..., session_id: _Optional[str] = ..., timestamp: _Optional[str] = ..., intent: _Optional[str] = ..., intent_confidence: _Optional[float] = ..., intent_evidence: _Optional[str] = ..., sentiment: _Optional[float] = ..., urgency: _Optional[float] = ..., clarity: _Optional[float] = ..., complexity: _Optional[float] = ..., similarity_previous: _Optional[float] = ..., word_count: _Optional[int] = ..., segment_index: _Optional[int] = ..., excerpt: _Optional[str] = ...) -> None: ...

class Relationship(_message.Message):
    __slots__ = ("source_key", "target_key", "kind", "confidence", "evidence", "session_id")
    SOURCE_KEY_FIELD_NUMBER: _ClassVar[int]
    TARGET_KEY_FIELD_NUMBER: _ClassVar[int]
    KIND_FIELD_NUMBER: _ClassVar[int]
    CONFIDENCE_FIELD_NUMBER: _ClassVar[int]
    EVIDENCE_FIELD_NUMBER: _ClassVar[int]
    SESSION_ID_FIELD_NUMBER: _ClassVar[int]
    source_key: str
    target_key: str
    kind: str
    confidence: float
    evidence: str
    session_id: str
    def __init__(self, source_key: _Optional[str] = ..., target_key: _Optional[str] = ..., kind: _Optional[str] = ..., confidence: _Optional[float] = ..., evidence: _Optional[str] = ..., session_id: _Optional[str] = ...) -> None: ...

class SessionSummary(_message.Message):
    __slots__ = ("session_id", "project_key", "messages", "prompts", "assistant_messages", "interruptions", "response_seconds_sum", "responses", "first_timestamp", "last_timestamp", "branches", "compactions", "subagents", "resumed_from", "sentiment_sum", "segments")
    SESSION_ID_FIELD_NUMBER: _ClassVar[int]
    PROJECT_KEY_FIELD_NUMBER: _ClassVar[int]
    MESSAGES_FIELD_NUMBER: _ClassVar[int]
    PROMPTS_FIELD_NUMBER: _ClassVar[int]
    ASSISTANT_MESSAGES_FIELD_NUMBER: _ClassVar[int]
    INTERRUPTIONS_FIELD_NUMBER: _ClassVar[int]
    RESPONSE_SECONDS_SUM_FIELD_NUMBER: _ClassVar[int]
    RESPONSES_FIELD_NUMBER: _ClassVar[int]
    FIRST_TIMESTAMP_FIELD_NUMBER: _ClassVar[int]
    LAST_TIMESTAMP_FIELD_NUMBER: _ClassVar[int]
    BRANCHES_FIELD_NUMBER: _ClassVar[int]
    COMPACTIONS_FIELD_NUMBER: _ClassVar[int]
    SUBAGENTS_FIELD_NUMBER: _ClassVar[int]
    RESUMED_FROM_FIELD_NUMBER: _ClassVar[int]
    SENTIMENT_SUM_FIELD_NUMBER: _ClassVar[int]
    SEGMENTS_FIELD_NUMBER: _ClassVar[int]
    session_id: str
    project_key: str
    messages: int
    prompts: int
    assistant_messages: int
    interruptions: int
    response_seconds_sum: float
    responses: int
    first_timestamp: str
    last_timestamp: str
    branches: int
    compactions: int
    subagents: int
    resumed_from: str
    sentiment_sum: float
    segments: int
    def __init__(self, session_id: _Optional[str] = ..., project_key: _Optional[str] = ..., messages: _Optional[int] = ..., prompts: _Optional[int] = ..., assistant_messages: _Optional[int] = ..., interruptions: _Optional[int] = ..., response_seconds_sum: _Optional[float] = ..., responses: _Optional[int] = ..., first_timestamp: _Optional[str] = ..., last_timestamp: _Optional[str] = ..., branches: _Optional[int] = ..., compactions: _Optional[int] = ..., subagents: _Optional[int] = ..., resumed_from: _Optional[str] = ..., sentiment_sum: _Optional[float] = ..., segments: _Optional[int] = ...) -> None: ...

class AnalysisUpdate(_message.Message):
    __slots__ = ("session_id", "segments", "turns", "relationships", "summary", "thread_changed", "resumed_from", "project_key")
    SESSION_ID_FIELD_NUMBER: _ClassVar[int]
    SEGMENTS_FIELD_NUMBER: _ClassVar[int]
    TURNS_FIELD_NUMBER: _ClassVar[int]
    RELATIONSHIPS_FIELD_NUMBER: _ClassVar[int]
    SUMMARY_FIELD_NUMBER: _ClassVar[int]
    THREAD_CHANGED_FIELD_NUMBER: _ClassVar[int]
    RESUMED_FROM_FIELD_NUMBER: _ClassVar[int]
    PROJECT_KEY_FIELD_NUMBER: _ClassVar[int]
    session_id: str
    segments: _containers.RepeatedCompositeFieldContainer[Segment]
    turns: _containers.RepeatedCompositeFieldContainer[TurnAnalysis]
    relationships: _containers.RepeatedCompositeFieldContainer[Relationship]
    summary: SessionSummary
    thread_changed: bool
    resumed_from: str
    project_key: str
    def __init__(self, session_id: _Optional[str] = ..., segments: _Optional[_Iterable[_Union[Segment, _Mapping]]] = ..., turns: _Optional[_Iterable[_Union[TurnAnalysis, _Mapping]]] = ..., relationships: _Optional[_Iterable[_Union[Relationship, _Mapping]]] = ..., summary: _Optional[_Union[SessionSummary, _Mapping]] = ..., thread_changed: _Optional[bool] = ..., resumed_from: _Optional[str] = ..., project_key: _Optional[str] = ...) -> None: ...
