"""Which stored lines are one billed API response, and which of them stands for it.

The one rule threadline counts tokens by: `threadline usage` and the store's `GetUsage`
(threadline/storage/accounting.py) and the subagent cost of the tool report
(threadline/storage/tools.py) all count through `billable_responses`. Plain functions over
the row dicts `threadline.storage.usage.usage_rows` yields (in sequence order); nothing here
knows about SQL or gRPC. docs/accounting.md ("What is counted") states the same rule in
prose, and evaluation/recount.py re-implements it from that text alone.

One *billable response* is one model API call, counted once with its final figures:

- Claude Code writes one line per content block of a streamed response, every one with the
  response's `message.id` and `usage`.
  - Lines with a `requestId` that share `message.id` are one response wherever they are
    (Anthropic's id is unique per response: a copy in another file or session, or a `/btw`
    replay under a new `requestId`, is the same call).
  - Lines without a `requestId` come from gateways and third-party backends. Their ids need
    not be unique (some answer every call with the same id), and their early lines carry
    `output_tokens` 0, no `stop_reason` and an *estimated* input, so prompt figures do not
    identify a response. Within one file, lines of one session with one id (and the same
    sidechain flag, and for `agent_progress` copies the same subagent) follow each other;
    a line continues the response of the line before it, or starts the next call with that
    id, by `_continues`. Copies of such a response in other files or in `agent_progress`
    lines are the same response when session, id and final figures agree
    (`_merge_requestless`).
  - Lines with no `message.id` are a response each.
- The line that stands for a response (`_stands_for`): the response's own line rather than a
  copy embedded in an `agent_progress` record, a non-sidechain line rather than a sidechain
  replay, then a line with a `stop_reason` (the API sets it once the response is complete),
  then the most output tokens, then the line stored last. For an Anthropic stream that is
  the line with the stop reason, or the last one written; for a gateway, the final line with
  the real input and cache reads.
- Subagent responses that Claude Code embedded in `agent_progress` records of the parent
  session count like any other line (and collapse with the subagent's own file when present:
  when it is not, the embedded copy is the only record of a billed call).
- `<synthetic>` lines (written locally for API errors and interruptions) and lines whose
  figures are all zero bill nothing and are not responses.
- Codex reports each model call in an `event_msg`/`token_count` record (per-call figures);
  the model is the one of the session's latest `turn_context`. A `token_count` repeated with
  the same figures and no model output (`response_item`) since the previous one is a re-emit
  of the same call, not another call.
- Gemini CLI may append a message again with updated figures: the last version of each
  message id in a session counts.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

import orjson

from threadline.domain.records import CODEX, GEMINI

# The model Claude Code names on lines it writes itself (API errors, interruptions): no call.
SYNTHETIC = "<synthetic>"


@dataclass(slots=True)
class Response:
    """One billable API response, with the figures of the line that stands for it."""

    agent: str  # source format: claude_code, codex, gemini, ...
    model: str
    timestamp: str
    session_id: str
    project_key: str
    source_path: str
    source_line: int
    seq: int
    api_message_id: str = ""
    request_id: str = ""
    is_sidechain: bool = False
    input_tokens: int = 0
    output_tokens: int = 0
    cache_creation_tokens: int = 0
    cache_creation_5m_tokens: int = 0
    cache_creation_1h_tokens: int = 0
    cache_read_tokens: int = 0
    reasoning_output_tokens: int = 0
    stop_reason: str = ""
    embedded: bool = False  # read from a copy embedded in an agent_progress line
    embedded_agent: str = ""  # the subagent whose line an agent_progress record copies
    lines: int = 1  # stored lines that reported this response

    @property
    def total_tokens(self) -> int:
        return (self.input_tokens + self.output_tokens + self.cache_creation_tokens
                + self.cache_read_tokens)

    @property
    def figures(self) -> tuple[int, int, int, int]:
        return (self.input_tokens, self.output_tokens, self.cache_creation_tokens,
                self.cache_read_tokens)


def _n(value: object) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) else 0


def _text(value: object) -> str:
    return value if isinstance(value, str) else ""


def line_of(row: dict) -> Response | None:
    """The response figures one stored row reports, or None when it reports none."""
    line = Response(
        agent=row.get("format") or "", model=row.get("model") or "",
        timestamp=row.get("timestamp") or "", session_id=row.get("session_id") or "",
        project_key=row.get("project_key") or "", source_path=row.get("source_path") or "",
        source_line=_n(row.get("source_line_number")), seq=_n(row.get("seq")),
        api_message_id=row.get("api_message_id") or "", request_id=row.get("request_id") or "",
        is_sidechain=bool(row.get("is_sidechain")),
        input_tokens=_n(row.get("input_tokens")), output_tokens=_n(row.get("output_tokens")),
        cache_creation_tokens=_n(row.get("cache_creation_input_tokens")),
        cache_creation_5m_tokens=_n(row.get("cache_creation_5m_tokens")),
        cache_creation_1h_tokens=_n(row.get("cache_creation_1h_tokens")),
        cache_read_tokens=_n(row.get("cache_read_input_tokens")),
        reasoning_output_tokens=_n(row.get("reasoning_output_tokens")),
        stop_reason=row.get("stop_reason") or "")
    if row.get("input_tokens") is None:
        embedded = embedded_response(row.get("embedded"))
        if embedded is None:
            return None
        for name, value in embedded.items():
            setattr(line, name, value)
        line.embedded = True
    if line.total_tokens == 0 or line.model == SYNTHETIC:
        return None
    return line


def embedded_response(raw: bytes | None) -> dict | None:
    """The subagent response a Claude Code `progress`/`agent_progress` line embeds
    (`data.message`), as Response fields; None when the line embeds none with usage."""
    if not raw:
        return None
    try:
        obj = orjson.loads(raw)
    except orjson.JSONDecodeError:
        return None
    data = obj.get("data") if isinstance(obj, dict) else None
    outer = data.get("message") if isinstance(data, dict) else None
    inner = outer.get("message") if isinstance(outer, dict) else None
    usage = inner.get("usage") if isinstance(inner, dict) else None
    if not isinstance(usage, dict):
        return None
    split = usage.get("cache_creation")
    split = split if isinstance(split, dict) else {}
    return {
        "api_message_id": _text(inner.get("id")), "request_id": _text(outer.get("requestId")),
        "model": _text(inner.get("model")),
        "timestamp": _text(outer.get("timestamp")) or _text(obj.get("timestamp")),
        "is_sidechain": outer.get("isSidechain") is True,
        "stop_reason": _text(inner.get("stop_reason")),
        "embedded_agent": _text(data.get("agentId")) or _text(outer.get("agentId")),
        "input_tokens": _n(usage.get("input_tokens")),
        "output_tokens": _n(usage.get("output_tokens")),
        "cache_creation_tokens": _n(usage.get("cache_creation_input_tokens")),
        "cache_creation_5m_tokens": _n(split.get("ephemeral_5m_input_tokens")),
        "cache_creation_1h_tokens": _n(split.get("ephemeral_1h_input_tokens")),
        "cache_read_tokens": _n(usage.get("cache_read_input_tokens")),
    }


# --- Claude Code: which lines are one response, which line stands for it ---------------------

def _rank(line: Response) -> tuple[bool, bool, bool, int]:
    return (not line.embedded, not line.is_sidechain, bool(line.stop_reason),
            line.output_tokens)


def _stands_for(kept: Response, other: Response) -> Response:
    """Of two records of one response (`other` stored later), the one that stands for it:
    its own line before an agent_progress copy, a main-chain line before a sidechain replay,
    then a line with a stop_reason, then the most output tokens, then the later line."""
    winner = kept if _rank(kept) > _rank(other) else other
    winner.lines = kept.lines + other.lines
    if not winner.model:
        winner.model = kept.model or other.model
    return winner


def _continues(last: Response, line: Response) -> bool:
    """Whether `line` belongs to the same requestless response as `last`, the line before it
    with the same session and id in the same file. Never when it reports fewer output
    tokens (a streamed count only grows; the next call starts again). Otherwise when `last`
    closed its response (a stop_reason), only a repeat of its figures (Claude Code 2.1.x
    writes the final usage on every block line); when `last` is a gateway's early line (no
    stop_reason, 0 output tokens), always: the final line replaces the estimated input; else
    when the prompt figures are the same (a stream whose output count grows)."""
    if line.output_tokens < last.output_tokens:
        return False
    if last.stop_reason:
        return line.figures == last.figures
    if last.output_tokens == 0:
        return True
    return (line.input_tokens, line.cache_creation_tokens, line.cache_read_tokens) == (
        last.input_tokens, last.cache_creation_tokens, last.cache_read_tokens)


def _stream(line: Response) -> tuple:
    """The lines one requestless response is written in follow each other here."""
    return (line.source_path, line.session_id, line.api_message_id, line.is_sidechain,
            line.embedded, line.embedded_agent)


@dataclass(slots=True)
class _Open:
    key: tuple  # where its response is kept
    last: Response  # the latest line of the stream


def _merge_requestless(responses: dict[tuple, Response], keys: list[tuple]) -> None:
    """Copies of one requestless response in other files, or embedded in agent_progress
    lines, collapse: the same session, id and final figures. The n-th response of a stream
    with given figures matches the n-th of another stream with those figures, so two calls
    of one stream never collapse, however alike."""
    first: dict[tuple, tuple] = {}
    seen: dict[tuple, int] = {}
    for key in keys:
        response = responses[key]
        figures = (_stream(response), response.figures)
        ordinal = seen.get(figures, 0)
        seen[figures] = ordinal + 1
        identity = (response.session_id, response.api_message_id, response.figures, ordinal)
        kept = first.get(identity)
        if kept is None:
            first[identity] = key
            continue
        responses[kept] = _stands_for(responses[kept], response)
        del responses[key]


def billable_responses(rows: Iterable[dict]) -> list[Response]:
    """Every billable response in the rows (which must come in sequence order), each once.

    Keeps one small object per response, not per row, so it streams any number of rows.
    """
    responses: dict[tuple, Response] = {}
    codex_model: dict[str, str] = {}
    codex_last: dict[str, tuple | None] = {}
    streams: dict[tuple, _Open] = {}
    requestless: list[tuple] = []
    for row in rows:
        fmt = row.get("format") or ""
        if fmt == CODEX:
            session = row.get("session_id") or ""
            kind = row.get("type")
            if kind == "turn_context":
                if row.get("model"):
                    codex_model[session] = row["model"]
                continue
            if kind == "response_item":
                codex_last[session] = None  # the model produced output: a new call follows
                continue
            line = line_of(row)
            if line is None:
                continue
            figures = (*line.figures, line.reasoning_output_tokens)
            if codex_last.get(session) == figures:
                continue
            codex_last[session] = figures
            line.model = line.model or codex_model.get(session, "")
            responses[("line", line.seq)] = line
            continue
        line = line_of(row)
        if line is None:
            continue
        if fmt == GEMINI:
            key = ("gemini", line.session_id, line.api_message_id or f"#{line.seq}")
            kept = responses.get(key)
            if kept is not None:
                line.lines = kept.lines + 1
            responses[key] = line  # the last version wins (and keeps the first's place)
            continue
        if not line.api_message_id:
            responses[("line", line.seq)] = line
            continue
        if line.request_id:
            key = ("id", line.api_message_id)
            kept = responses.get(key)
            responses[key] = line if kept is None else _stands_for(kept, line)
            continue
        stream = _stream(line)
        current = streams.get(stream)
        if current is not None and _continues(current.last, line):
            responses[current.key] = _stands_for(responses[current.key], line)
            current.last = line
        else:
            key = ("requestless", line.seq)
            responses[key] = line
            requestless.append(key)
            streams[stream] = _Open(key, line)
    _merge_requestless(responses, requestless)
    return list(responses.values())
