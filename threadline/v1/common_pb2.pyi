from threadline.v1 import analysis_types_pb2 as _analysis_types_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class SourceFormat(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    SOURCE_FORMAT_UNSPECIFIED: _ClassVar[SourceFormat]
    SOURCE_FORMAT_CLAUDE_CODE: _ClassVar[SourceFormat]
    SOURCE_FORMAT_CODEX: _ClassVar[SourceFormat]
    SOURCE_FORMAT_GEMINI: _ClassVar[SourceFormat]
    SOURCE_FORMAT_GENERIC: _ClassVar[SourceFormat]

class Role(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    ROLE_UNSPECIFIED: _ClassVar[Role]
    ROLE_USER: _ClassVar[Role]
    ROLE_ASSISTANT: _ClassVar[Role]
    ROLE_SYSTEM: _ClassVar[Role]
    ROLE_TOOL: _ClassVar[Role]

class BlockKind(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    BLOCK_KIND_UNSPECIFIED: _ClassVar[BlockKind]
    BLOCK_KIND_TEXT: _ClassVar[BlockKind]
    BLOCK_KIND_THINKING: _ClassVar[BlockKind]
    BLOCK_KIND_TOOL_USE: _ClassVar[BlockKind]
    BLOCK_KIND_TOOL_RESULT: _ClassVar[BlockKind]
    BLOCK_KIND_IMAGE: _ClassVar[BlockKind]
    BLOCK_KIND_SERVER_TOOL_USE: _ClassVar[BlockKind]
    BLOCK_KIND_OTHER: _ClassVar[BlockKind]

class ChangeKind(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    CHANGE_KIND_UNSPECIFIED: _ClassVar[ChangeKind]
    CHANGE_KIND_MESSAGE: _ClassVar[ChangeKind]
    CHANGE_KIND_PARSE_ERROR: _ClassVar[ChangeKind]
    CHANGE_KIND_THREAD_UPDATED: _ClassVar[ChangeKind]
    CHANGE_KIND_ANALYSIS_UPDATED: _ClassVar[ChangeKind]
SOURCE_FORMAT_UNSPECIFIED: SourceFormat
SOURCE_FORMAT_CLAUDE_CODE: SourceFormat
SOURCE_FORMAT_CODEX: SourceFormat
SOURCE_FORMAT_GEMINI: SourceFormat
SOURCE_FORMAT_GENERIC: SourceFormat
ROLE_UNSPECIFIED: Role
ROLE_USER: Role
ROLE_ASSISTANT: Role
ROLE_SYSTEM: Role
ROLE_TOOL: Role
BLOCK_KIND_UNSPECIFIED: BlockKind
BLOCK_KIND_TEXT: BlockKind
BLOCK_KIND_THINKING: BlockKind
BLOCK_KIND_TOOL_USE: BlockKind
BLOCK_KIND_TOOL_RESULT: BlockKind
BLOCK_KIND_IMAGE: BlockKind
BLOCK_KIND_SERVER_TOOL_USE: BlockKind
BLOCK_KIND_OTHER: BlockKind
CHANGE_KIND_UNSPECIFIED: ChangeKind
CHANGE_KIND_MESSAGE: ChangeKind
CHANGE_KIND_PARSE_ERROR: ChangeKind
CHANGE_KIND_THREAD_UPDATED: ChangeKind
CHANGE_KIND_ANALYSIS_UPDATED: ChangeKind

class SourcePosition(_message.Message):
    __slots__ = ("path", "byte_offset", "line_number", "byte_length")
    PATH_FIELD_NUMBER: _ClassVar[int]
    BYTE_OFFSET_FIELD_NUMBER: _ClassVar[int]
    LINE_NUMBER_FIELD_NUMBER: _ClassVar[int]
    BYTE_LENGTH_FIELD_NUMBER: _ClassVar[int]
    path: str
    byte_offset: int
    line_number: int
    byte_length: int
    def __init__(self, path: _Optional[str] = ..., byte_offset: _Optional[int] = ..., line_number: _Optional[int] = ..., byte_length: _Optional[int] = ...) -> None: ...

class TokenUsage(_message.Message):
    __slots__ = ("input_tokens", "output_tokens", "cache_creation_input_tokens", "cache_creation_5m_tokens", "cache_creation_1h_tokens", "cache_read_input_tokens", "service_tier", "reasoning_output_tokens")
    INPUT_TOKENS_FIELD_NUMBER: _ClassVar[int]
    OUTPUT_TOKENS_FIELD_NUMBER: _ClassVar[int]
    CACHE_CREATION_INPUT_TOKENS_FIELD_NUMBER: _ClassVar[int]
    CACHE_CREATION_5M_TOKENS_FIELD_NUMBER: _ClassVar[int]
    CACHE_CREATION_1H_TOKENS_FIELD_NUMBER: _ClassVar[int]
    CACHE_READ_INPUT_TOKENS_FIELD_NUMBER: _ClassVar[int]
    SERVICE_TIER_FIELD_NUMBER: _ClassVar[int]
    REASONING_OUTPUT_TOKENS_FIELD_NUMBER: _ClassVar[int]
    input_tokens: int
    output_tokens: int
    cache_creation_input_tokens: int
    cache_creation_5m_tokens: int
    cache_creation_1h_tokens: int
    cache_read_input_tokens: int
    service_tier: str
    reasoning_output_tokens: int
    def __init__(self, input_tokens: _Optional[int] = ..., output_tokens: _Optional[int] = ..., cache_creation_input_tokens: _Optional[int] = ..., cache_creation_5m_tokens: _Optional[int] = ..., cache_creation_1h_tokens: _Optional[int] = ..., cache_read_input_tokens: _Optional[int] = ..., service_tier: _Optional[str] = ..., reasoning_output_tokens: _Optional[int] = ...) -> None: ...

class ImageRef(_message.Message):
    __slots__ = ("media_type", "source_type", "size_bytes", "sha256")
    MEDIA_TYPE_FIELD_NUMBER: _ClassVar[int]
    SOURCE_TYPE_FIELD_NUMBER: _ClassVar[int]
    SIZE_BYTES_FIELD_NUMBER: _ClassVar[int]
    SHA256_FIELD_NUMBER: _ClassVar[int]
    media_type: str
    source_type: str
    size_bytes: int
    sha256: str
    def __init__(self, media_type: _Optional[str] = ..., source_type: _Optional[str] = ..., size_bytes: _Optional[int] = ..., sha256: _Optional[str] = ...) -> None: ...

class ContentBlock(_message.Message):
    __slots__ = ("kind", "text", "tool_use_id", "tool_name", "tool_input_json", "is_error", "image", "raw_type", "agent_id", "persisted_output_path", "duration_seconds")
    KIND_FIELD_NUMBER: _ClassVar[int]
    TEXT_FIELD_NUMBER: _ClassVar[int]
    TOOL_USE_ID_FIELD_NUMBER: _ClassVar[int]
    TOOL_NAME_FIELD_NUMBER: _ClassVar[int]
    TOOL_INPUT_JSON_FIELD_NUMBER: _ClassVar[int]
    IS_ERROR_FIELD_NUMBER: _ClassVar[int]
    IMAGE_FIELD_NUMBER: _ClassVar[int]
    RAW_TYPE_FIELD_NUMBER: _ClassVar[int]
    AGENT_ID_FIELD_NUMBER: _ClassVar[int]
    PERSISTED_OUTPUT_PATH_FIELD_NUMBER: _ClassVar[int]
    DURATION_SECONDS_FIELD_NUMBER: _ClassVar[int]
    kind: BlockKind
    text: str
    tool_use_id: str
    tool_name: str
    tool_input_json: bytes
    is_error: bool
    image: ImageRef
    raw_type: str
    agent_id: str
    persisted_output_path: str
    duration_seconds: float
    def __init__(self, kind: _Optional[_Union[BlockKind, str]] = ..., text: _Optional[str] = ..., tool_use_id: _Optional[str] = ..., tool_name: _Optional[str] = ..., tool_input_json: _Optional[bytes] = ..., is_error: _Optional[bool] = ..., image: _Optional[_Union[ImageRef, _Mapping]] = ..., raw_type: _Optional[str] = ..., agent_id: _Optional[str] = ..., persisted_output_path: _Optional[str] = ..., duration_seconds: _Optional[float] = ...) -> None: ...

class Message(_message.Message):
    __slots__ = ("uuid", "parent_uuid", "session_id", "type", "role", "timestamp", "content", "source", "key", "project_key", "format", "subtype", "agent_id", "is_sidechain", "model", "logical_parent_uuid", "cwd", "git_branch", "version", "usage", "request_id", "api_message_id", "stop_reason", "is_meta", "raw", "text", "drift", "thread_parent_uuid", "thread_parent_source", "thread_relation", "thread_confidence")
    UUID_FIELD_NUMBER: _ClassVar[int]
    PARENT_UUID_FIELD_NUMBER: _ClassVar[int]
    SESSION_ID_FIELD_NUMBER: _ClassVar[int]
    TYPE_FIELD_NUMBER: _ClassVar[int]
    ROLE_FIELD_NUMBER: _ClassVar[int]
    TIMESTAMP_FIELD_NUMBER: _ClassVar[int]
    CONTENT_FIELD_NUMBER: _ClassVar[int]
    SOURCE_FIELD_NUMBER: _ClassVar[int]
    KEY_FIELD_NUMBER: _ClassVar[int]
    PROJECT_KEY_FIELD_NUMBER: _ClassVar[int]
    FORMAT_FIELD_NUMBER: _ClassVar[int]
    SUBTYPE_FIELD_NUMBER: _ClassVar[int]
    AGENT_ID_FIELD_NUMBER: _ClassVar[int]
    IS_SIDECHAIN_FIELD_NUMBER: _ClassVar[int]
    MODEL_FIELD_NUMBER: _ClassVar[int]
    LOGICAL_PARENT_UUID_FIELD_NUMBER: _ClassVar[int]
    CWD_FIELD_NUMBER: _ClassVar[int]
    GIT_BRANCH_FIELD_NUMBER: _ClassVar[int]
    VERSION_FIELD_NUMBER: _ClassVar[int]
    USAGE_FIELD_NUMBER: _ClassVar[int]
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    API_MESSAGE_ID_FIELD_NUMBER: _ClassVar[int]
    STOP_REASON_FIELD_NUMBER: _ClassVar[int]
    IS_META_FIELD_NUMBER: _ClassVar[int]
    RAW_FIELD_NUMBER: _ClassVar[int]
    TEXT_FIELD_NUMBER: _ClassVar[int]
    DRIFT_FIELD_NUMBER: _ClassVar[int]
    THREAD_PARENT_UUID_FIELD_NUMBER: _ClassVar[int]
    THREAD_PARENT_SOURCE_FIELD_NUMBER: _ClassVar[int]
    THREAD_RELATION_FIELD_NUMBER: _ClassVar[int]
    THREAD_CONFIDENCE_FIELD_NUMBER: _ClassVar[int]
    uuid: str
    parent_uuid: str
    session_id: str
    type: str
    role: Role
    timestamp: str
    content: _containers.RepeatedCompositeFieldContainer[ContentBlock]
    source: SourcePosition
    key: str
    project_key: str
    format: SourceFormat
    subtype: str
    agent_id: str
    is_sidechain: bool
    model: str
    logical_parent_uuid: str
    cwd: str
    git_branch: str
    version: str
    usage: TokenUsage
    request_id: str
    api_message_id: str
    stop_reason: str
    is_meta: bool
    raw: bytes
    text: str
    drift: str
    thread_parent_uuid: str
    thread_parent_source: str
    thread_relation: str
    thread_confidence: float
    def __init__(self, uuid: _Optional[str] = ..., parent_uuid: _Optional[str] = ..., session_id: _Optional[str] = ..., type: _Optional[str] = ..., role: _Optional[_Union[Role, str]] = ..., timestamp: _Optional[str] = ..., content: _Optional[_Iterable[_Union[ContentBlock, _Mapping]]] = ..., source: _Optional[_Union[SourcePosition, _Mapping]] = ..., key: _Optional[str] = ..., project_key: _Optional[str] = ..., format: _Optional[_Union[SourceFormat, str]] = ..., subtype: _Optional[str] = ..., agent_id: _Optional[str] = ..., is_sidechain: _Optional[bool] = ..., model: _Optional[str] = ..., logical_parent_uuid: _Optional[str] = ..., cwd: _Optional[str] = ..., git_branch: _Optional[str] = ..., version: _Optional[str] = ..., usage: _Optional[_Union[TokenUsage, _Mapping]] = ..., request_id: _Optional[str] = ..., api_message_id: _Optional[str] = ..., stop_reason: _Optional[str] = ..., is_meta: _Optional[bool] = ..., raw: _Optional[bytes] = ..., text: _Optional[str] = ..., drift: _Optional[str] = ..., thread_parent_uuid: _Optional[str] = ..., thread_parent_source: _Optional[str] = ..., thread_relation: _Optional[str] = ..., thread_confidence: _Optional[float] = ...) -> None: ...

class ToolCall(_message.Message):
    __slots__ = ("tool_use_id", "session_id", "name", "use_message_key", "result_message_key", "input_json", "is_error", "started_at", "finished_at", "has_result", "has_use", "agent_id")
    TOOL_USE_ID_FIELD_NUMBER: _ClassVar[int]
    SESSION_ID_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    USE_MESSAGE_KEY_FIELD_NUMBER: _ClassVar[int]
    RESULT_MESSAGE_KEY_FIELD_NUMBER: _ClassVar[int]
    INPUT_JSON_FIELD_NUMBER: _ClassVar[int]
    IS_ERROR_FIELD_NUMBER: _ClassVar[int]
    STARTED_AT_FIELD_NUMBER: _ClassVar[int]
    FINISHED_AT_FIELD_NUMBER: _ClassVar[int]
    HAS_RESULT_FIELD_NUMBER: _ClassVar[int]
    HAS_USE_FIELD_NUMBER: _ClassVar[int]
    AGENT_ID_FIELD_NUMBER: _ClassVar[int]
    tool_use_id: str
    session_id: str
    name: str
    use_message_key: str
    result_message_key: str
    input_json: bytes
    is_error: bool
    started_at: str
    finished_at: str
    has_result: bool
    has_use: bool
    agent_id: str
    def __init__(self, tool_use_id: _Optional[str] = ..., session_id: _Optional[str] = ..., name: _Optional[str] = ..., use_message_key: _Optional[str] = ..., result_message_key: _Optional[str] = ..., input_json: _Optional[bytes] = ..., is_error: _Optional[bool] = ..., started_at: _Optional[str] = ..., finished_at: _Optional[str] = ..., has_result: _Optional[bool] = ..., has_use: _Optional[bool] = ..., agent_id: _Optional[str] = ...) -> None: ...

class ParseError(_message.Message):
    __slots__ = ("source", "reason", "detail", "excerpt", "project_key")
    SOURCE_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    DETAIL_FIELD_NUMBER: _ClassVar[int]
    EXCERPT_FIELD_NUMBER: _ClassVar[int]
    PROJECT_KEY_FIELD_NUMBER: _ClassVar[int]
    source: SourcePosition
    reason: str
    detail: str
    excerpt: bytes
    project_key: str
    def __init__(self, source: _Optional[_Union[SourcePosition, _Mapping]] = ..., reason: _Optional[str] = ..., detail: _Optional[str] = ..., excerpt: _Optional[bytes] = ..., project_key: _Optional[str] = ...) -> None: ...

class Source(_message.Message):
    __slots__ = ("path", "identity", "project_key", "format", "head_sha256", "head_length")
    PATH_FIELD_NUMBER: _ClassVar[int]
    IDENTITY_FIELD_NUMBER: _ClassVar[int]
    PROJECT_KEY_FIELD_NUMBER: _ClassVar[int]
    FORMAT_FIELD_NUMBER: _ClassVar[int]
    HEAD_SHA256_FIELD_NUMBER: _ClassVar[int]
    HEAD_LENGTH_FIELD_NUMBER: _ClassVar[int]
    path: str
    identity: str
    project_key: str
    format: SourceFormat
    head_sha256: str
    head_length: int
    def __init__(self, path: _Optional[str] = ..., identity: _Optional[str] = ..., project_key: _Optional[str] = ..., format: _Optional[_Union[SourceFormat, str]] = ..., head_sha256: _Optional[str] = ..., head_length: _Optional[int] = ...) -> None: ...

class SourceOffset(_message.Message):
    __slots__ = ("source", "offset", "line_count", "session_id", "tail_sha256")
    SOURCE_FIELD_NUMBER: _ClassVar[int]
    OFFSET_FIELD_NUMBER: _ClassVar[int]
    LINE_COUNT_FIELD_NUMBER: _ClassVar[int]
    SESSION_ID_FIELD_NUMBER: _ClassVar[int]
    TAIL_SHA256_FIELD_NUMBER: _ClassVar[int]
    source: Source
    offset: int
    line_count: int
    session_id: str
    tail_sha256: str
    def __init__(self, source: _Optional[_Union[Source, _Mapping]] = ..., offset: _Optional[int] = ..., line_count: _Optional[int] = ..., session_id: _Optional[str] = ..., tail_sha256: _Optional[str] = ...) -> None: ...

class SourceChunk(_message.Message):
    __slots__ = ("position", "messages", "errors", "reset")
    POSITION_FIELD_NUMBER: _ClassVar[int]
    MESSAGES_FIELD_NUMBER: _ClassVar[int]
    ERRORS_FIELD_NUMBER: _ClassVar[int]
    RESET_FIELD_NUMBER: _ClassVar[int]
    position: SourceOffset
    messages: _containers.RepeatedCompositeFieldContainer[Message]
    errors: _containers.RepeatedCompositeFieldContainer[ParseError]
    reset: bool
    def __init__(self, position: _Optional[_Union[SourceOffset, _Mapping]] = ..., messages: _Optional[_Iterable[_Union[Message, _Mapping]]] = ..., errors: _Optional[_Iterable[_Union[ParseError, _Mapping]]] = ..., reset: _Optional[bool] = ...) -> None: ...

class Batch(_message.Message):
    __slots__ = ("batch_id", "chunks", "tool_calls", "trace_context", "analysis", "analysed_through", "analysed_after")
    class TraceContextEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    BATCH_ID_FIELD_NUMBER: _ClassVar[int]
    CHUNKS_FIELD_NUMBER: _ClassVar[int]
    TOOL_CALLS_FIELD_NUMBER: _ClassVar[int]
    TRACE_CONTEXT_FIELD_NUMBER: _ClassVar[int]
    ANALYSIS_FIELD_NUMBER: _ClassVar[int]
    ANALYSED_THROUGH_FIELD_NUMBER: _ClassVar[int]
    ANALYSED_AFTER_FIELD_NUMBER: _ClassVar[int]
    batch_id: int
    chunks: _containers.RepeatedCompositeFieldContainer[SourceChunk]
    tool_calls: _containers.RepeatedCompositeFieldContainer[ToolCall]
    trace_context: _containers.ScalarMap[str, str]
    analysis: _containers.RepeatedCompositeFieldContainer[_analysis_types_pb2.AnalysisUpdate]
    analysed_through: int
    analysed_after: int
    def __init__(self, batch_id: _Optional[int] = ..., chunks: _Optional[_Iterable[_Union[SourceChunk, _Mapping]]] = ..., tool_calls: _Optional[_Iterable[_Union[ToolCall, _Mapping]]] = ..., trace_context: _Optional[_Mapping[str, str]] = ..., analysis: _Optional[_Iterable[_Union[_analysis_types_pb2.AnalysisUpdate, _Mapping]]] = ..., analysed_through: _Optional[int] = ..., analysed_after: _Optional[int] = ...) -> None: ...

class BatchAck(_message.Message):
    __slots__ = ("batch_id", "offsets", "last_sequence", "new_messages")
    BATCH_ID_FIELD_NUMBER: _ClassVar[int]
    OFFSETS_FIELD_NUMBER: _ClassVar[int]
    LAST_SEQUENCE_FIELD_NUMBER: _ClassVar[int]
    NEW_MESSAGES_FIELD_NUMBER: _ClassVar[int]
    batch_id: int
    offsets: _containers.RepeatedCompositeFieldContainer[SourceOffset]
    last_sequence: int
    new_messages: int
    def __init__(self, batch_id: _Optional[int] = ..., offsets: _Optional[_Iterable[_Union[SourceOffset, _Mapping]]] = ..., last_sequence: _Optional[int] = ..., new_messages: _Optional[int] = ...) -> None: ...

class Change(_message.Message):
    __slots__ = ("sequence", "kind", "project_key", "session_id", "message", "parse_error", "analysis", "trace_context")
    class TraceContextEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    SEQUENCE_FIELD_NUMBER: _ClassVar[int]
    KIND_FIELD_NUMBER: _ClassVar[int]
    PROJECT_KEY_FIELD_NUMBER: _ClassVar[int]
    SESSION_ID_FIELD_NUMBER: _ClassVar[int]
    MESSAGE_FIELD_NUMBER: _ClassVar[int]
    PARSE_ERROR_FIELD_NUMBER: _ClassVar[int]
    ANALYSIS_FIELD_NUMBER: _ClassVar[int]
    TRACE_CONTEXT_FIELD_NUMBER: _ClassVar[int]
    sequence: int
    kind: ChangeKind
    project_key: str
    session_id: str
    message: Message
    parse_error: ParseError
    analysis: _analysis_types_pb2.AnalysisUpdate
    trace_context: _containers.ScalarMap[str, str]
    def __init__(self, sequence: _Optional[int] = ..., kind: _Optional[_Union[ChangeKind, str]] = ..., project_key: _Optional[str] = ..., session_id: _Optional[str] = ..., message: _Optional[_Union[Message, _Mapping]] = ..., parse_error: _Optional[_Union[ParseError, _Mapping]] = ..., analysis: _Optional[_Union[_analysis_types_pb2.AnalysisUpdate, _Mapping]] = ..., trace_context: _Optional[_Mapping[str, str]] = ...) -> None: ...

class ChangeBatch(_message.Message):
    __slots__ = ("changes", "condition")
    CHANGES_FIELD_NUMBER: _ClassVar[int]
    CONDITION_FIELD_NUMBER: _ClassVar[int]
    changes: _containers.RepeatedCompositeFieldContainer[Change]
    condition: StoreCondition
    def __init__(self, changes: _Optional[_Iterable[_Union[Change, _Mapping]]] = ..., condition: _Optional[_Union[StoreCondition, _Mapping]] = ...) -> None: ...

class StoreCondition(_message.Message):
    __slots__ = ("write_error",)
    WRITE_ERROR_FIELD_NUMBER: _ClassVar[int]
    write_error: str
    def __init__(self, write_error: _Optional[str] = ...) -> None: ...
