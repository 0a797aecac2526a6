"""Hand-made session records for the segment and relationship tests, and real sessions from
the shared corpus in arrival order."""

from __future__ import annotations

import itertools
from collections import defaultdict
from datetime import UTC, datetime, timedelta
from pathlib import Path

import orjson

from services.analysis.normalize import message_key, session_of
from services.ingest.discovery import discover
from services.ingest.parser import parse_line
from threadline.domain.analysis import PromptAnalysis
from threadline.domain.records import CLAUDE_CODE, Block, Position, Record

START = datetime(2025, 3, 1, 9, 0, tzinfo=UTC)


class Session:
    """Builds one session's records with increasing keys and a clock the test moves."""

    def __init__(self, session_id: str = "s1", cwd: str = "/repo") -> None:
        self.session_id = session_id
        self.cwd = cwd
        self.now = START
        self._numbers = itertools.count(1)

    def wait(self, seconds: float) -> Session:
        self.now += timedelta(seconds=seconds)
        return self

    def _record(self, kind: str, role: str, text: str = "", content: list[Block] | None = None,
                subtype: str = "", raw: bytes = b"{}", is_meta: bool = False,
                timestamp: str | None = None) -> Record:
        n = next(self._numbers)
        key = f"{self.session_id}-{n:05d}"
        if content is None:
            content = [Block("text", text)] if text else []
        stamp = self.now.isoformat().replace("+00:00", "Z") if timestamp is None else timestamp
        return Record(kind, Position("session.jsonl", n * 100, n, 99), raw, CLAUDE_CODE,
                      uuid=key, session_id=self.session_id, subtype=subtype, role=role,
                      timestamp=stamp, cwd=self.cwd, content=content, is_meta=is_meta,
                      text=text, key=key)

    def prompt(self, text: str, **kw) -> Record:
        return self._record("user", "user", text, **kw)

    def reply(self, text: str) -> Record:
        return self._record("assistant", "assistant", text)

    def tool(self, name: str, timestamp: str | None = None, **tool_input) -> Record:
        block = Block("tool_use", tool_use_id=f"toolu_{next(self._numbers)}", tool_name=name,
                      tool_input_json=orjson.dumps(tool_input))
        return self._record("assistant", "assistant", content=[block], timestamp=timestamp)

    def result(self, text: str, is_error: bool = False) -> Record:
        block = Block("tool_result", text=text, tool_use_id="toolu_x", is_error=is_error)
        return self._record("user", "user", content=[block])

    def compact_boundary(self, trigger: str) -> Record:
        raw = orjson.dumps({"type": "system", "subtype": "compact_boundary",
                            "compactMetadata": {"trigger": trigger, "preTokens": 150000}})
        return self._record("system", "", "Conversation compacted", subtype="compact_boundary",
                            raw=raw)

    def compact_summary(self) -> Record:
        return self._record("user", "user", "This session is being continued from a previous "
                            "conversation that ran out of context.", subtype="compact_summary",
                            is_meta=True)


def figures(text: str, intent: str = "request", similarity_previous: float = 0.0
            ) -> PromptAnalysis:
    """A prompt's figures as the context analysis gives them (only what segments read)."""
    return PromptAnalysis(intent=intent, intent_confidence=0.8, intent_evidence="",
                          sentiment=0.0, urgency=0.0, clarity=0.5, complexity=5.0,
                          similarity_previous=similarity_previous, word_count=len(text.split()))


def corpus_sessions(corpus: Path, limit: int, min_records: int = 40
                    ) -> list[list[Record]]:
    """The first `limit` Claude Code sessions of at least `min_records` records, each in
    arrival order (files in path order, each file top to bottom, exact uuids once)."""
    transcripts = []
    for root in sorted(p for p in corpus.iterdir() if p.is_dir()):
        transcripts += [t for t in discover([root]) if t.format == CLAUDE_CODE]
    transcripts.sort(key=lambda t: t.path)
    sessions: dict[tuple[str, str], list[Record]] = defaultdict(list)
    seen: dict[tuple[str, str], set[str]] = defaultdict(set)
    for transcript in transcripts:
        data = Path(transcript.path).read_bytes()
        offset = 0
        for number, line in enumerate(data.split(b"\n"), 1):
            length = len(line)
            if line.strip():
                parsed = parse_line(line, Position(transcript.path, offset, number, length),
                                    CLAUDE_CODE)
                for rec in parsed if isinstance(parsed, list) else [parsed]:
                    if not isinstance(rec, Record):
                        continue
                    rec.key = message_key(rec.uuid, transcript.project_key, transcript.path,
                                          offset, line)
                    rec.session_id = session_of(transcript.path, rec.session_id)
                    session = (transcript.project_key, rec.session_id)
                    if rec.key not in seen[session]:
                        seen[session].add(rec.key)
                        sessions[session].append(rec)
            offset += length + 1
    chosen = [records for records in sessions.values() if len(records) >= min_records]
    return chosen[:limit]


class PromptReader:
    """Real prompts and their figures, as the analysis service derives them: with
    `services.analysis.prompts` and `services.analysis.context` when they are there, else with
    a plain stand-in (typed user text that is no tool result, meta line or side chain)."""

    def __init__(self) -> None:
        self.previous_prompt = ""
        self.previous_assistant = ""
        try:
            from services.analysis.context import analyse_prompt
            from services.analysis.prompts import prompt_text
        except ImportError:
            prompt_text = analyse_prompt = None
        self._prompt_text = prompt_text
        self._analyse = analyse_prompt

    def __call__(self, rec: Record) -> tuple[str | None, PromptAnalysis | None]:
        if self._prompt_text is not None:
            prompt = self._prompt_text(rec)
        elif (rec.type == "user" and rec.role == "user" and not rec.is_meta
              and not rec.is_sidechain and not rec.agent_id and rec.text.strip()
              and not any(b.kind == "tool_result" for b in rec.content)
              and not rec.text.lstrip().startswith(("<local-command", "Caveat:"))):
            prompt = rec.text.strip()
        else:
            prompt = None
        if prompt is None:
            if rec.role == "assistant" and rec.text:
                self.previous_assistant = rec.text
            return None, None
        if self._analyse is not None:
            analysis = self._analyse(prompt, self.previous_prompt, self.previous_assistant)
        else:
            from services.analysis.text import similarity
            intent = "command" if prompt.startswith("/") else "request"
            analysis = figures(prompt, intent, similarity(prompt, self.previous_prompt))
        self.previous_prompt = prompt
        return prompt, analysis
