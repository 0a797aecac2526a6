"""Typed readers for JSON fields, shared by the format modules.

Transcripts are untrusted input: any field may hold a number where a string belongs, an
array where an object belongs, or nested junk. These readers type-check instead of catching
exceptions: a string field that holds something else becomes its JSON text (or "" for null),
a count that is not a 64-bit integer becomes 0.

Hot paths build `Record`, `Block` and `Usage` positionally (about three times cheaper than by
keyword, and the parser's budget is a small multiple of `orjson.loads`). The checks below
make a change of field order in `threadline.domain.records` fail at import, not corrupt records.
"""

from __future__ import annotations

import dataclasses
import hashlib

import orjson

from threadline.domain.records import Block, Image, Record, Usage

RECORD_ORDER = ("type", "source", "raw", "format", "uuid", "parent_uuid", "logical_parent_uuid",
                "session_id", "agent_id", "is_sidechain", "subtype", "role", "timestamp", "cwd",
                "git_branch", "version", "model", "content", "usage", "request_id",
                "api_message_id", "stop_reason", "is_meta", "text", "drift")
BLOCK_ORDER = ("kind", "text", "tool_use_id", "tool_name", "tool_input_json", "is_error",
               "image", "raw_type", "agent_id", "persisted_output_path", "duration_seconds")
USAGE_ORDER = ("input_tokens", "output_tokens", "cache_creation_input_tokens",
               "cache_creation_5m_tokens", "cache_creation_1h_tokens", "cache_read_input_tokens",
               "service_tier", "reasoning_output_tokens")
for _cls, _order in ((Record, RECORD_ORDER), (Block, BLOCK_ORDER), (Usage, USAGE_ORDER)):
    if tuple(f.name for f in dataclasses.fields(_cls))[:len(_order)] != _order:
        raise ImportError(f"threadline.domain.records.{_cls.__name__} changed its field order; "
                          "update services/ingest/formats/fields.py")

INT64_MIN = -(2**63)
INT64_MAX = 2**63 - 1
ROLES = frozenset({"user", "assistant", "system", "tool"})


def text(value: object) -> str:
    """A field that should be a string; anything else is kept as its JSON text."""
    if value is None:
        return ""
    if isinstance(value, str):
        return value
    if isinstance(value, bool | int | float):
        return str(value)
    return json_text(value).decode()


def count(value: object) -> int:
    """A count as a 64-bit integer; anything else (or out of range) counts as 0."""
    if isinstance(value, bool):
        return int(value)
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    if isinstance(value, int) and INT64_MIN <= value <= INT64_MAX:
        return value
    return 0


def json_text(value: object) -> bytes:
    """`value` as UTF-8 JSON (what `Block.tool_input_json` holds)."""
    try:
        return orjson.dumps(value)
    except (TypeError, orjson.JSONEncodeError):  # integers beyond 64 bits, deep nesting
        return b"null"


def json_string_bytes(value: object) -> bytes:
    """A field that should already hold JSON text (Codex `arguments`): kept when it parses,
    otherwise encoded as a JSON string so the block always holds valid JSON."""
    if isinstance(value, str):
        raw = value.encode("utf-8", "surrogatepass")
        try:
            orjson.loads(raw)
        except orjson.JSONDecodeError:
            return json_text(value)
        return raw
    return json_text(value)


def role(value: object) -> str:
    return value if value.__class__ is str and value in ROLES else ""


def image_from_source(source: object) -> Image:
    """An Anthropic image `source`: a reference (media type, size, digest), never the bytes."""
    if not isinstance(source, dict):
        return Image()
    data = source.get("data")
    if isinstance(data, str):
        return image_from_base64(text(source.get("media_type")), data, text(source.get("type")))
    digest = ""
    if isinstance(source.get("url"), str):
        digest = hashlib.sha256(source["url"].encode("utf-8", "surrogatepass")).hexdigest()
    return Image(text(source.get("media_type")), text(source.get("type")), 0, digest)


def image_from_url(url: object) -> Image:
    """An image given as a URL (Codex `input_image`, OpenAI `image_url`): a `data:` URL is
    measured like base64 data; any other URL is referenced by its digest."""
    if isinstance(url, dict):  # OpenAI chat: {"url": ...}
        url = url.get("url")
    if not isinstance(url, str):
        return Image()
    if url.startswith("data:"):
        header, _, data = url.partition(",")
        return image_from_base64(header[5:].split(";", 1)[0], data)
    return Image("", "url", 0, hashlib.sha256(url.encode("utf-8", "surrogatepass")).hexdigest())


def image_from_base64(media_type: str, data: str, source_type: str = "base64") -> Image:
    # Decoded size from the base64 length; the payload itself stays only in the raw line.
    size = max(0, len(data) * 3 // 4 - data[-2:].count("="))
    digest = hashlib.sha256(data.encode("utf-8", "surrogatepass")).hexdigest()
    return Image(media_type, source_type, size, digest)


def text_block(value: str, raw_type: str = "text") -> Block:
    return Block("text", value, "", "", b"", False, None, raw_type, "", "")


def thinking_block(value: str, raw_type: str = "thinking") -> Block:
    return Block("thinking", value, "", "", b"", False, None, raw_type, "", "")


def joined_text(blocks: list[Block]) -> str:
    """Plain text of a record: its non-empty text blocks, one per line."""
    return "\n".join(b.text for b in blocks if b.kind == "text" and b.text)
