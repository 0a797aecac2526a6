"""Turn one transcript line into records, or a `LineError`. Never raises on bad input.

Formats are recognised per file and per line. Per line, by structure: Claude Code records
(a `type` and a `message` object or a Claude envelope), Codex CLI rollout lines (`{timestamp,
type, payload}`), Gemini CLI chat lines (`type` gemini/info/error/warning, `$set`,
`$rewindTo`, a `{sessionId, projectHash}` metadata line, or a whole legacy chat document:
`messages` with a `sessionId` or `projectHash`), and generic chat lines (`role`/`content`, or
a conversation's `messages` list, read as one record per message). Per file, `hint` (the format
discovery gave the file) settles what a line alone cannot: in a Gemini chat a
`{"type": "user", ...}` line is a Gemini message, elsewhere a generic chat line; in a Codex
rollout an unknown `type` with a `payload` is an unknown Codex line.

The format modules (`services.ingest.formats`) say how each format maps onto `Record` and
keep the lists of known record types; anything outside them is still a record, with its raw
line and `Record.drift` saying what was not understood. Only lines that are not JSON objects
become `LineError`s.

Public functions:

- `parse_line(raw, position, hint="")`: one line (without its newline). Returns a `Record`, a
  `LineError`, or a list of `Record`s for a legacy Gemini chat document or a generic
  conversation line (one per message; each record's `raw` is that message's own JSON, all
  with the line's position).
- `reparse_line(raw, position, fmt)`: a stored record's raw bytes read again as the format it
  was stored with (`Record.format`): a Gemini message stored alone (a legacy document's
  message, or a JSONL line read with the file's hint) may not say by itself that it is one;
  `{"type": "user", "content": ...}` alone reads as a generic chat line. Fields that came
  from around the line rather than from it (the session a Gemini document or an earlier line
  named) are not in the raw bytes: keep the stored ones.
- `truncated_tail(raw, position)`: the error for an unterminated last line that will not grow.
- `excerpt(raw)`: the short, redacted start of a line that a parse error may show.
- `use_redactor(redactor)`: the secrets redaction applied to everything returned (see below).
- `line_too_long(excerpt, position, limit)`: the error for a line over the length limit.

Every record and error returned has passed through the redaction (`threadline.redaction`):
text, thinking, tool inputs and results, summaries, drift notes, error details and excerpts
hold `[REDACTED:<kind>]` where the line held a secret. This is the one place where transcript
text enters threadline (ingest and `threadline reparse` both parse here), so nothing stored as
text, indexed, streamed or shown holds what was redacted. `Record.raw` keeps the line byte for
byte.
"""

from __future__ import annotations

import orjson

from services.ingest.formats import claude, codex, gemini, generic
from services.ingest.formats.fields import text
from threadline.domain.records import (
    CLAUDE_CODE,
    CODEX,
    GEMINI,
    GENERIC,
    LineError,
    Position,
    Record,
)
from threadline.redaction import Redactor

EXCERPT_BYTES = 200
_loads = orjson.loads
_JSONDecodeError = orjson.JSONDecodeError
_message_record = claude.message_record
# Exceptions a format module could still meet on hostile input it did not foresee (they
# type-check every field, so this is a last line of defence, not the way errors are handled).
_UNFORESEEN = (RecursionError, ValueError, TypeError, AttributeError, KeyError, IndexError)
_redactor = Redactor()


def use_redactor(redactor: Redactor) -> None:
    """Redact with `redactor` from now on (the built-in rules plus the user's patterns)."""
    global _redactor
    _redactor = redactor


def _redacted(result: Record | LineError | list[Record]) -> Record | LineError | list[Record]:
    if result.__class__ is Record:
        return _redactor.record(result)
    if result.__class__ is list:
        for rec in result:
            _redactor.record(rec)
    return result  # a LineError: `_error` redacted it


def parse_line(raw: bytes, position: Position,
               hint: str = "") -> Record | LineError | list[Record]:
    """Parse one line (without its newline); see the module docstring."""
    return _redacted(_parse_line(raw, position, hint))


def _parse_line(raw: bytes, position: Position,
                hint: str = "") -> Record | LineError | list[Record]:
    try:
        obj = _loads(raw)
    except _JSONDecodeError as exc:
        return _error(raw, position, _decode_reason(raw, exc), str(exc))
    except RecursionError as exc:  # orjson refuses very deep nesting; be safe regardless.
        return _error(raw, position, "too_deep", str(exc))
    if obj.__class__ is not dict:
        return _error(raw, position, "not_an_object", f"top-level JSON {type(obj).__name__}")
    kind = obj.get("type")
    try:
        if kind == "assistant" or kind == "user":
            message = obj.get("message")
            if message.__class__ is dict:
                return _message_record(obj, kind, message, raw, position)
        return _dispatch(obj, kind, raw, position, hint)
    except _UNFORESEEN as exc:
        return _error(raw, position, "unreadable_fields", repr(exc))


def reparse_line(raw: bytes, position: Position,
                 fmt: str) -> Record | LineError | list[Record]:
    """A stored record's raw bytes, read again as the format it was stored with."""
    if fmt not in (GEMINI, CODEX, GENERIC):
        return parse_line(raw, position, fmt)
    return _redacted(_reparse_line(raw, position, fmt))


def _reparse_line(raw: bytes, position: Position,
                  fmt: str) -> Record | LineError | list[Record]:
    try:
        obj = _loads(raw)
    except _JSONDecodeError as exc:
        return _error(raw, position, _decode_reason(raw, exc), str(exc))
    except RecursionError as exc:
        return _error(raw, position, "too_deep", str(exc))
    if not isinstance(obj, dict):
        return _error(raw, position, "not_an_object", f"top-level JSON {type(obj).__name__}")
    try:
        if fmt == GEMINI:
            return gemini.parse(obj, raw, position)
        if fmt == CODEX:
            return codex.parse(obj, text(obj.get("type")), raw, position)
        return generic.parse(obj, raw, position)
    except _UNFORESEEN as exc:
        return _error(raw, position, "unreadable_fields", repr(exc))


def _envelope(obj: dict) -> bool:
    """Whether a line carries Claude Code's record envelope."""
    return "uuid" in obj or "parentUuid" in obj or "sessionId" in obj


def _dispatch(obj: dict, kind: object, raw: bytes, position: Position,
              hint: str) -> Record | list[Record]:
    if kind.__class__ is not str:
        if kind is None and (gemini.is_record(obj) or (hint == GEMINI and (
                "id" in obj or isinstance(obj.get("messages"), list)))):
            return gemini.parse(obj, raw, position)
        return generic.parse(obj, raw, position)
    if "payload" in obj and (kind in codex.TYPES or hint == CODEX
                             or ("timestamp" in obj and not _envelope(obj))):
        return codex.parse(obj, kind, raw, position)
    if kind in claude.MESSAGE_TYPES:  # a user/assistant line without a message object
        if _envelope(obj):
            return claude.other_record(obj, kind, raw, position)
        if kind == "user" and (hint == GEMINI or isinstance(obj.get("id"), str)):
            return gemini.message(obj, raw, position)
        return generic.parse(obj, raw, position)
    if kind in claude.TYPES and (kind not in claude.JOURNAL_TYPES or "key" in obj):
        return claude.other_record(obj, kind, raw, position)
    if kind in gemini.MESSAGE_TYPES or hint == GEMINI:
        if not _envelope(obj):
            return gemini.parse(obj, raw, position)
    if _envelope(obj) or (hint == CLAUDE_CODE and not generic.is_chat(obj)):
        return claude.other_record(obj, kind, raw, position)
    return generic.parse(obj, raw, position)


def _decode_reason(raw: bytes, exc: Exception) -> str:
    try:
        raw.decode("utf-8")
    except UnicodeDecodeError:
        return "invalid_utf8"
    message = str(exc).lower()
    if "recursion" in message or "depth limit" in message:  # orjson's limit is 1024 levels
        return "too_deep"
    return "invalid_json"


def excerpt(raw: bytes) -> bytes:
    """The first `EXCERPT_BYTES` of a line, redacted: all of a line that a parse error keeps."""
    return _redactor.excerpt(raw, EXCERPT_BYTES)


def _error(raw: bytes, position: Position, reason: str, detail: str) -> LineError:
    # Redacted before it is cut, so that a secret the cut would split is still recognised.
    return LineError(position, reason, _redactor.text(detail[:4096])[:500], excerpt(raw))


def truncated_tail(raw: bytes, position: Position) -> LineError:
    """The unterminated end of a file that will not grow any more (a copy made mid-write)."""
    return _error(raw, position, "truncated_tail", "last line has no newline and is not valid JSON")


def line_too_long(excerpt: bytes, position: Position, limit: int,
                  complete: bool = True) -> LineError:
    """A line longer than the limit, read past without being held: its first bytes only
    (`complete` False: the file ends inside it, so its length is a lower bound)."""
    size = f"{position.byte_length} bytes" if complete else (
        f"at least {position.byte_length} bytes (no newline yet)")
    return _error(excerpt, position, "line_too_long",
                  f"line of {size} is longer than the limit of {limit} bytes (max_line_bytes)")


__all__ = ["EXCERPT_BYTES", "excerpt", "line_too_long", "parse_line", "reparse_line",
           "truncated_tail", "use_redactor"]
