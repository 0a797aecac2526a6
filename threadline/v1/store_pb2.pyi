from threadline.v1 import common_pb2 as _common_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class ChangesRequest(_message.Message):
    __slots__ = ("since_sequence", "follow", "project_key", "session_id", "heads_only")
    SINCE_SEQUENCE_FIELD_NUMBER: _ClassVar[int]
    FOLLOW_FIELD_NUMBER: _ClassVar[int]
    PROJECT_KEY_FIELD_NUMBER: _ClassVar[int]
    SESSION_ID_FIELD_NUMBER: _ClassVar[int]
    HEADS_ONLY_FIELD_NUMBER: _ClassVar[int]
    since_sequence: int
    follow: bool
    project_key: str
    session_id: str
    heads_only: bool
    def __init__(self, since_sequence: _Optional[int] = ..., follow: _Optional[bool] = ..., project_key: _Optional[str] = ..., session_id: _Optional[str] = ..., heads_only: _Optional[bool] = ...) -> None: ...

class Project(_message.Message):
    __slots__ = ("key", "cwd", "session_count", "message_count", "first_timestamp", "last_timestamp", "name", "aliases")
    KEY_FIELD_NUMBER: _ClassVar[int]
    CWD_FIELD_NUMBER: _ClassVar[int]
    SESSION_COUNT_FIELD_NUMBER: _ClassVar[int]
    MESSAGE_COUNT_FIELD_NUMBER: _ClassVar[int]
    FIRST_TIMESTAMP_FIELD_NUMBER: _ClassVar[int]
    LAST_TIMESTAMP_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    ALIASES_FIELD_NUMBER: _ClassVar[int]
    key: str
    cwd: str
    session_count: int
    message_count: int
    first_timestamp: str
    last_timestamp: str
    name: str
    aliases: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, key: _Optional[str] = ..., cwd: _Optional[str] = ..., session_count: _Optional[int] = ..., message_count: _Optional[int] = ..., first_timestamp: _Optional[str] = ..., last_timestamp: _Optional[str] = ..., name: _Optional[str] = ..., aliases: _Optional[_Iterable[str]] = ...) -> None: ...

class ListProjectsRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class ListProjectsResponse(_message.Message):
    __slots__ = ("projects",)
    PROJECTS_FIELD_NUMBER: _ClassVar[int]
    projects: _containers.RepeatedCompositeFieldContainer[Project]
    def __init__(self, projects: _Optional[_Iterable[_Union[Project, _Mapping]]] = ...) -> None: ...

class Session(_message.Message):
    __slots__ = ("session_id", "project_key", "cwd", "git_branch", "version", "message_count", "first_timestamp", "last_timestamp", "format", "title", "project_name")
    SESSION_ID_FIELD_NUMBER: _ClassVar[int]
    PROJECT_KEY_FIELD_NUMBER: _ClassVar[int]
    CWD_FIELD_NUMBER: _ClassVar[int]
    GIT_BRANCH_FIELD_NUMBER: _ClassVar[int]
    VERSION_FIELD_NUMBER: _ClassVar[int]
    MESSAGE_COUNT_FIELD_NUMBER: _ClassVar[int]
    FIRST_TIMESTAMP_FIELD_NUMBER: _ClassVar[int]
    LAST_TIMESTAMP_FIELD_NUMBER: _ClassVar[int]
    FORMAT_FIELD_NUMBER: _ClassVar[int]
    TITLE_FIELD_NUMBER: _ClassVar[int]
    PROJECT_NAME_FIELD_NUMBER: _ClassVar[int]
    session_id: str
    project_key: str
    cwd: str
    git_branch: str
    version: str
    message_count: int
    first_timestamp: str
    last_timestamp: str
    format: _common_pb2.SourceFormat
    title: str
    project_name: str
    def __init__(self, session_id: _Optional[str] = ..., project_key: _Optional[str] = ..., cwd: _Optional[str] = ..., git_branch: _Optional[str] = ..., version: _Optional[str] = ..., message_count: _Optional[int] = ..., first_timestamp: _Optional[str] = ..., last_timestamp: _Optional[str] = ..., format: _Optional[_Union[_common_pb2.SourceFormat, str]] = ..., title: _Optional[str] = ..., project_name: _Optional[str] = ...) -> None: ...

class ListSessionsRequest(_message.Message):
    __slots__ = ("project_key",)
    PROJECT_KEY_FIELD_NUMBER: _ClassVar[int]
    project_key: str
    def __init__(self, project_key: _Optional[str] = ...) -> None: ...

class ListSessionsResponse(_message.Message):
    __slots__ = ("sessions",)
    SESSIONS_FIELD_NUMBER: _ClassVar[int]
    sessions: _containers.RepeatedCompositeFieldContainer[Session]
    def __init__(self, sessions: _Optional[_Iterable[_Union[Session, _Mapping]]] = ...) -> None: ...

class GetSessionMessagesRequest(_message.Message):
    __slots__ = ("session_id", "after_sequence", "limit", "include_raw")
    SESSION_ID_FIELD_NUMBER: _ClassVar[int]
    AFTER_SEQUENCE_FIELD_NUMBER: _ClassVar[int]
    LIMIT_FIELD_NUMBER: _ClassVar[int]
    INCLUDE_RAW_FIELD_NUMBER: _ClassVar[int]
    session_id: str
    after_sequence: int
    limit: int
    include_raw: bool
    def __init__(self, session_id: _Optional[str] = ..., after_sequence: _Optional[int] = ..., limit: _Optional[int] = ..., include_raw: _Optional[bool] = ...) -> None: ...

class StoredMessage(_message.Message):
    __slots__ = ("sequence", "message")
    SEQUENCE_FIELD_NUMBER: _ClassVar[int]
    MESSAGE_FIELD_NUMBER: _ClassVar[int]
    sequence: int
    message: _common_pb2.Message
    def __init__(self, sequence: _Optional[int] = ..., message: _Optional[_Union[_common_pb2.Message, _Mapping]] = ...) -> None: ...

class GetSessionMessagesResponse(_message.Message):
    __slots__ = ("messages", "next_after_sequence")
    MESSAGES_FIELD_NUMBER: _ClassVar[int]
    NEXT_AFTER_SEQUENCE_FIELD_NUMBER: _ClassVar[int]
    messages: _containers.RepeatedCompositeFieldContainer[StoredMessage]
    next_after_sequence: int
    def __init__(self, messages: _Optional[_Iterable[_Union[StoredMessage, _Mapping]]] = ..., next_after_sequence: _Optional[int] = ...) -> None: ...

class GetOffsetsRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class GetOffsetsResponse(_message.Message):
    __slots__ = ("offsets",)
    OFFSETS_FIELD_NUMBER: _ClassVar[int]
    offsets: _containers.RepeatedCompositeFieldContainer[_common_pb2.SourceOffset]
    def __init__(self, offsets: _Optional[_Iterable[_Union[_common_pb2.SourceOffset, _Mapping]]] = ...) -> None: ...

class ListParseErrorsRequest(_message.Message):
    __slots__ = ("limit",)
    LIMIT_FIELD_NUMBER: _ClassVar[int]
    limit: int
    def __init__(self, limit: _Optional[int] = ...) -> None: ...

class ListParseErrorsResponse(_message.Message):
    __slots__ = ("errors",)
    ERRORS_FIELD_NUMBER: _ClassVar[int]
    errors: _containers.RepeatedCompositeFieldContainer[_common_pb2.ParseError]
    def __init__(self, errors: _Optional[_Iterable[_Union[_common_pb2.ParseError, _Mapping]]] = ...) -> None: ...

class GetStatsRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class StoreStats(_message.Message):
    __slots__ = ("projects", "sessions", "messages", "tool_calls", "parse_errors", "sources", "last_sequence", "write_error")
    PROJECTS_FIELD_NUMBER: _ClassVar[int]
    SESSIONS_FIELD_NUMBER: _ClassVar[int]
    MESSAGES_FIELD_NUMBER: _ClassVar[int]
    TOOL_CALLS_FIELD_NUMBER: _ClassVar[int]
    PARSE_ERRORS_FIELD_NUMBER: _ClassVar[int]
    SOURCES_FIELD_NUMBER: _ClassVar[int]
    LAST_SEQUENCE_FIELD_NUMBER: _ClassVar[int]
    WRITE_ERROR_FIELD_NUMBER: _ClassVar[int]
    projects: int
    sessions: int
    messages: int
    tool_calls: int
    parse_errors: int
    sources: int
    last_sequence: int
    write_error: str
    def __init__(self, projects: _Optional[int] = ..., sessions: _Optional[int] = ..., messages: _Optional[int] = ..., tool_calls: _Optional[int] = ..., parse_errors: _Optional[int] = ..., sources: _Optional[int] = ..., last_sequence: _Optional[int] = ..., write_error: _Optional[str] = ...) -> None: ...

class GetUsageRequest(_message.Message):
    __slots__ = ("by", "since", "until", "timezone", "agent")
    BY_FIELD_NUMBER: _ClassVar[int]
    SINCE_FIELD_NUMBER: _ClassVar[int]
    UNTIL_FIELD_NUMBER: _ClassVar[int]
    TIMEZONE_FIELD_NUMBER: _ClassVar[int]
    AGENT_FIELD_NUMBER: _ClassVar[int]
    by: str
    since: str
    until: str
    timezone: str
    agent: str
    def __init__(self, by: _Optional[str] = ..., since: _Optional[str] = ..., until: _Optional[str] = ..., timezone: _Optional[str] = ..., agent: _Optional[str] = ...) -> None: ...

class UsageRow(_message.Message):
    __slots__ = ("period", "start", "input_tokens", "output_tokens", "cache_creation_tokens", "cache_read_tokens", "total_tokens", "cost_usd", "messages", "unpriced_messages", "unpriced_models", "long_context_messages", "models", "agents", "first_timestamp", "last_timestamp")
    PERIOD_FIELD_NUMBER: _ClassVar[int]
    START_FIELD_NUMBER: _ClassVar[int]
    INPUT_TOKENS_FIELD_NUMBER: _ClassVar[int]
    OUTPUT_TOKENS_FIELD_NUMBER: _ClassVar[int]
    CACHE_CREATION_TOKENS_FIELD_NUMBER: _ClassVar[int]
    CACHE_READ_TOKENS_FIELD_NUMBER: _ClassVar[int]
    TOTAL_TOKENS_FIELD_NUMBER: _ClassVar[int]
    COST_USD_FIELD_NUMBER: _ClassVar[int]
    MESSAGES_FIELD_NUMBER: _ClassVar[int]
    UNPRICED_MESSAGES_FIELD_NUMBER: _ClassVar[int]
    UNPRICED_MODELS_FIELD_NUMBER: _ClassVar[int]
    LONG_CONTEXT_MESSAGES_FIELD_NUMBER: _ClassVar[int]
    MODELS_FIELD_NUMBER: _ClassVar[int]
    AGENTS_FIELD_NUMBER: _ClassVar[int]
    FIRST_TIMESTAMP_FIELD_NUMBER: _ClassVar[int]
    LAST_TIMESTAMP_FIELD_NUMBER: _ClassVar[int]
    period: str
    start: str
    input_tokens: int
    output_tokens: int
    cache_creation_tokens: int
    cache_read_tokens: int
    total_tokens: int
    cost_usd: float
    messages: int
    unpriced_messages: int
    unpriced_models: _containers.RepeatedScalarFieldContainer[str]
    long_context_messages: int
    models: _containers.RepeatedScalarFieldContainer[str]
    agents: _containers.RepeatedScalarFieldContainer[str]
    first_timestamp: str
    last_timestamp: str
    def __init__(self, period: _Optional[str] = ..., start: _Optional[str] = ..., input_tokens: _Optional[int] = ..., output_tokens: _Optional[int] = ..., cache_creation_tokens: _Optional[int] = ..., cache_read_tokens: _Optional[int] = ..., total_tokens: _Optional[int] = ..., cost_usd: _Optional[float] = ..., messages: _Optional[int] = ..., unpriced_messages: _Optional[int] = ..., unpriced_models: _Optional[_Iterable[str]] = ..., long_context_messages: _Optional[int] = ..., models: _Optional[_Iterable[str]] = ..., agents: _Optional[_Iterable[str]] = ..., first_timestamp: _Optional[str] = ..., last_timestamp: _Optional[str] = ...) -> None: ...

class GetUsageResponse(_message.Message):
    __slots__ = ("rows", "total", "pricing_date")
    ROWS_FIELD_NUMBER: _ClassVar[int]
    TOTAL_FIELD_NUMBER: _ClassVar[int]
    PRICING_DATE_FIELD_NUMBER: _ClassVar[int]
    rows: _containers.RepeatedCompositeFieldContainer[UsageRow]
    total: UsageRow
    pricing_date: str
    def __init__(self, rows: _Optional[_Iterable[_Union[UsageRow, _Mapping]]] = ..., total: _Optional[_Union[UsageRow, _Mapping]] = ..., pricing_date: _Optional[str] = ...) -> None: ...

class ResolveNamesRequest(_message.Message):
    __slots__ = ("project", "session")
    PROJECT_FIELD_NUMBER: _ClassVar[int]
    SESSION_FIELD_NUMBER: _ClassVar[int]
    project: str
    session: str
    def __init__(self, project: _Optional[str] = ..., session: _Optional[str] = ...) -> None: ...

class ResolveNamesResponse(_message.Message):
    __slots__ = ("project_key", "session_id")
    PROJECT_KEY_FIELD_NUMBER: _ClassVar[int]
    SESSION_ID_FIELD_NUMBER: _ClassVar[int]
    project_key: str
    session_id: str
    def __init__(self, project_key: _Optional[str] = ..., session_id: _Optional[str] = ...) -> None: ...

class SearchRequest(_message.Message):
    __slots__ = ("query", "limit")
    QUERY_FIELD_NUMBER: _ClassVar[int]
    LIMIT_FIELD_NUMBER: _ClassVar[int]
    query: str
    limit: int
    def __init__(self, query: _Optional[str] = ..., limit: _Optional[int] = ...) -> None: ...

class SnippetPart(_message.Message):
    __slots__ = ("text", "highlighted")
    TEXT_FIELD_NUMBER: _ClassVar[int]
    HIGHLIGHTED_FIELD_NUMBER: _ClassVar[int]
    text: str
    highlighted: bool
    def __init__(self, text: _Optional[str] = ..., highlighted: _Optional[bool] = ...) -> None: ...

class SearchHit(_message.Message):
    __slots__ = ("sequence", "key", "uuid", "session_id", "project_key", "timestamp", "role", "type", "model", "ordinal", "score", "columns", "snippet")
    SEQUENCE_FIELD_NUMBER: _ClassVar[int]
    KEY_FIELD_NUMBER: _ClassVar[int]
    UUID_FIELD_NUMBER: _ClassVar[int]
    SESSION_ID_FIELD_NUMBER: _ClassVar[int]
    PROJECT_KEY_FIELD_NUMBER: _ClassVar[int]
    TIMESTAMP_FIELD_NUMBER: _ClassVar[int]
    ROLE_FIELD_NUMBER: _ClassVar[int]
    TYPE_FIELD_NUMBER: _ClassVar[int]
    MODEL_FIELD_NUMBER: _ClassVar[int]
    ORDINAL_FIELD_NUMBER: _ClassVar[int]
    SCORE_FIELD_NUMBER: _ClassVar[int]
    COLUMNS_FIELD_NUMBER: _ClassVar[int]
    SNIPPET_FIELD_NUMBER: _ClassVar[int]
    sequence: int
    key: str
    uuid: str
    session_id: str
    project_key: str
    timestamp: str
    role: str
    type: str
    model: str
    ordinal: int
    score: float
    columns: _containers.RepeatedScalarFieldContainer[str]
    snippet: _containers.RepeatedCompositeFieldContainer[SnippetPart]
    def __init__(self, sequence: _Optional[int] = ..., key: _Optional[str] = ..., uuid: _Optional[str] = ..., session_id: _Optional[str] = ..., project_key: _Optional[str] = ..., timestamp: _Optional[str] = ..., role: _Optional[str] = ..., type: _Optional[str] = ..., model: _Optional[str] = ..., ordinal: _Optional[int] = ..., score: _Optional[float] = ..., columns: _Optional[_Iterable[str]] = ..., snippet: _Optional[_Iterable[_Union[SnippetPart, _Mapping]]] = ...) -> None: ...

class SearchResponse(_message.Message):
    __slots__ = ("hits", "more", "expression", "recent_only")
    HITS_FIELD_NUMBER: _ClassVar[int]
    MORE_FIELD_NUMBER: _ClassVar[int]
    EXPRESSION_FIELD_NUMBER: _ClassVar[int]
    RECENT_ONLY_FIELD_NUMBER: _ClassVar[int]
    hits: _containers.RepeatedCompositeFieldContainer[SearchHit]
    more: bool
    expression: str
    recent_only: bool
    def __init__(self, hits: _Optional[_Iterable[_Union[SearchHit, _Mapping]]] = ..., more: _Optional[bool] = ..., expression: _Optional[str] = ..., recent_only: _Optional[bool] = ...) -> None: ...
