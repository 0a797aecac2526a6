"""A generated Claude Code corpus with the shape of real transcripts.

Sessions follow the real rhythm: a typed prompt, hook progress lines, an assistant response
streamed as one line per content block (thinking, text, tool_use) sharing `message.id` and
`requestId` with usage repeated, tool results carrying a `toolUseResult`, and the occasional
file-history-snapshot and turn_duration. Line sizes follow the real distribution (median
~600 bytes, a long tail of tool output). Deterministic for a given seed.
"""

from __future__ import annotations

import random
import uuid as uuidlib
from datetime import UTC, datetime, timedelta
from pathlib import Path

import orjson

WORDS = ("the parser test fails because offset line file session store commit index query "
         "stream client latency batch error retry config watcher thread tool result output "
         "function module import class return value python sqlite grpc").split()
TOOLS = ("Bash", "Read", "Edit", "Grep", "Glob", "Write", "TodoWrite")


def _text(rng: random.Random, words: int) -> str:
    return " ".join(rng.choice(WORDS) for _ in range(words))


class SessionWriter:
    """Builds the lines of one session."""

    def __init__(self, rng: random.Random, session_id: str, cwd: str, start: datetime):
        self.rng = rng
        self.session_id = session_id
        self.cwd = cwd
        self.clock = start
        self.parent: str | None = None

    def _envelope(self, kind: str, **fields) -> dict:
        self.clock += timedelta(milliseconds=self.rng.randint(5, 4000))
        uid = str(uuidlib.UUID(int=self.rng.getrandbits(128), version=4))
        record = {"parentUuid": self.parent, "isSidechain": False, "userType": "external",
                  "cwd": self.cwd, "sessionId": self.session_id, "version": "2.1.39",
                  "gitBranch": "main", "type": kind, **fields, "uuid": uid,
                  "timestamp": self.clock.isoformat(timespec="milliseconds").replace("+00:00",
                                                                                     "Z")}
        self.parent = uid
        return record

    def turn(self) -> list[dict]:
        rng = self.rng
        lines = [self._envelope("user", message={"role": "user",
                                                 "content": _text(rng, rng.randint(5, 60))})]
        for _ in range(rng.randint(0, 2)):
            lines.append(self._envelope("progress", data={"type": "hook_progress",
                                                          "hookEvent": "PostToolUse",
                                                          "command": "./hook.sh"},
                                        toolUseID=f"toolu_{rng.getrandbits(64):016x}"))
        for _ in range(rng.randint(1, 4)):
            lines.extend(self._response(rng))
        lines.append(self._envelope("system", subtype="turn_duration",
                                    durationMs=rng.randint(1000, 90000), isMeta=False))
        return lines

    def _response(self, rng: random.Random) -> list[dict]:
        msg_id = f"msg_{rng.getrandbits(96):024x}"
        request_id = f"req_{rng.getrandbits(96):024x}"
        blocks = []
        if rng.random() < 0.3:
            blocks.append({"type": "thinking", "thinking": _text(rng, rng.randint(20, 150)),
                           "signature": "sig"})
        blocks.append({"type": "text", "text": _text(rng, rng.randint(5, 80))})
        tool_id = f"toolu_{rng.getrandbits(96):024x}"
        tool = rng.choice(TOOLS)
        blocks.append({"type": "tool_use", "id": tool_id, "name": tool,
                       "input": {"command": _text(rng, 6), "description": _text(rng, 5)}})
        usage = {"input_tokens": rng.randint(1, 20),
                 "cache_creation_input_tokens": rng.randint(0, 9000),
                 "cache_read_input_tokens": rng.randint(0, 90000),
                 "cache_creation": {"ephemeral_5m_input_tokens": 0,
                                    "ephemeral_1h_input_tokens": 0},
                 "output_tokens": rng.randint(1, 900), "service_tier": "standard"}
        lines = []
        for i, block in enumerate(blocks):
            last = i == len(blocks) - 1
            lines.append(self._envelope("assistant", message={
                "model": "claude-opus-4-6", "id": msg_id, "type": "message", "role": "assistant",
                "content": [block], "stop_reason": "tool_use" if last else None,
                "stop_sequence": None, "usage": usage}, requestId=request_id))
        output = _text(rng, rng.choice((10, 40, 120, 400, 1500)))
        lines.append(self._envelope("user", message={"role": "user", "content": [
            {"tool_use_id": tool_id, "type": "tool_result", "content": output,
             "is_error": rng.random() < 0.05}]},
            toolUseResult={"stdout": output, "stderr": "", "interrupted": False,
                           "isImage": False}, sourceToolAssistantUUID=self.parent))
        return lines


def generate(root: Path, records: int, projects: int = 10, session_records: int = 1000,
             seed: int = 7) -> list[Path]:
    """Write at least `records` lines under root/<project>/<session>.jsonl; return the files."""
    rng = random.Random(seed)
    start = datetime(2026, 10, 1, 9, 0, tzinfo=UTC)
    files: list[Path] = []
    written = 0
    while written < records:
        project = f"-home-dev-project{len(files) % projects}"
        session_id = str(uuidlib.UUID(int=rng.getrandbits(128), version=4))
        writer = SessionWriter(rng, session_id, f"/home/dev/project{len(files) % projects}",
                               start + timedelta(hours=len(files)))
        lines = [{"type": "file-history-snapshot", "messageId": session_id,
                  "snapshot": {"messageId": session_id, "trackedFileBackups": {},
                               "timestamp": "2026-10-01T09:00:00.000Z"},
                  "isSnapshotUpdate": False}]
        while len(lines) < min(session_records, records - written):
            lines.extend(writer.turn())
        path = root / project / f"{session_id}.jsonl"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(b"".join(orjson.dumps(line) + b"\n" for line in lines))
        files.append(path)
        written += len(lines)
    return files


def live_line(rng: random.Random, session_id: str, cwd: str) -> tuple[str, bytes]:
    """One user line (uuid, bytes with newline) for the live-latency measurement."""
    writer = SessionWriter(rng, session_id, cwd, datetime.now(UTC))
    record = writer.turn()[0]
    return record["uuid"], orjson.dumps(record) + b"\n"
