"""Plain domain objects shared by the services: what a transcript line becomes.

These carry no protobuf or gRPC; `threadline.convert` maps them to and from the contract.
"""

from __future__ import annotations

from dataclasses import dataclass, field

# Source formats, mirroring threadline.v1.SourceFormat.
CLAUDE_CODE = "claude_code"
CODEX = "codex"
GEMINI = "gemini"
GENERIC = "generic"


@dataclass(slots=True)
class Position:
    path: str
    byte_offset: int
    line_number: int
    byte_length: int


@dataclass(slots=True)
class Usage:
    input_tokens: int = 0
    output_tokens: int = 0
    cache_creation_input_tokens: int = 0
    cache_creation_5m_tokens: int = 0
    cache_creation_1h_tokens: int = 0
    cache_read_input_tokens: int = 0
    service_tier: str = ""
    reasoning_output_tokens: int = 0


@dataclass(slots=True)
class Image:
    media_type: str = ""
    source_type: str = ""
    size_bytes: int = 0
    sha256: str = ""


@dataclass(slots=True)
class Block:
    kind: str  # text, thinking, tool_use, tool_result, image, server_tool_use, other
    text: str = ""
    tool_use_id: str = ""
    tool_name: str = ""
    tool_input_json: bytes = b""
    is_error: bool = False
    image: Image | None = None
    raw_type: str = ""
    agent_id: str = ""  # tool_result of a Task/Agent call: the subagent it ran
    persisted_output_path: str = ""  # the tool-results/<id>.txt file holding the full output
    # tool_result: the tool's own run time as its output states it (Codex), else None.
    duration_seconds: float | None = None


@dataclass(slots=True)
class Record:
    """One transcript record, parsed; `raw` keeps the exact line."""

    type: str
    source: Position
    raw: bytes
    format: str = CLAUDE_CODE
    uuid: str = ""
    parent_uuid: str = ""
    logical_parent_uuid: str = ""
    session_id: str = ""
    agent_id: str = ""
    is_sidechain: bool = False
    subtype: str = ""
    role: str = ""  # user, assistant, system, tool or ""
    timestamp: str = ""
    cwd: str = ""
    git_branch: str = ""
    version: str = ""
    model: str = ""
    content: list[Block] = field(default_factory=list)
    usage: Usage | None = None
    request_id: str = ""
    api_message_id: str = ""
    stop_reason: str = ""
    is_meta: bool = False
    text: str = ""
    # Why the parser did not fully understand this record ("" when it did); see common.proto.
    drift: str = ""
    # Set by analysis.
    key: str = ""
    project_key: str = ""


@dataclass(slots=True)
class LineError:
    """A line that could not become a record."""

    source: Position
    reason: str
    detail: str
    excerpt: bytes
    project_key: str = ""


@dataclass(slots=True)
class ToolCall:
    tool_use_id: str
    session_id: str
    name: str = ""
    use_message_key: str = ""
    result_message_key: str = ""
    input_json: bytes = b""
    is_error: bool = False
    started_at: str = ""
    finished_at: str = ""
    has_use: bool = False
    has_result: bool = False
    agent_id: str = ""
