"""The thin normalisation pass: storage keys, session ids and tool calls.

Plain functions of each record alone (so a batch resent after a restart normalises exactly
as the first time); nothing here knows about gRPC. The threading,
context and tool-pattern analyses build on this module's output in later stages.
"""

from __future__ import annotations

import hashlib
from pathlib import PurePath

from threadline.domain.keys import codex_key
from threadline.domain.records import CODEX, ToolCall


def message_key(uuid: str, project_key: str, path: str, byte_offset: int, raw: bytes,
                format: str = "", session_id: str = "") -> str:
    """The uuid when there is one; for a Codex line, `codex_key`; otherwise a stable hash of
    source and line.

    The hash covers the file name (not its full path, so a copied folder imports the same
    keys), the byte offset and the line itself: exact re-emits at other offsets stay distinct
    records, and re-reading the same line never duplicates it.
    """
    if uuid:
        return uuid
    if format == CODEX and session_id:
        return codex_key(session_id, raw)
    digest = hashlib.blake2b(digest_size=12)
    digest.update(f"{project_key}/{PurePath(path).name}:{byte_offset}:".encode())
    digest.update(raw)
    return "line:" + digest.hexdigest()


def session_of(path: str, session_id: str) -> str:
    """The record's session; for a record that names none, the file's.

    Ingest already gives such records the session of the last record before them in the same
    file (kept with the durable offsets, so the answer never depends on where reading
    resumed). What is left, the records before any session is named, belong to the session
    the file belongs to:

    - a file under `<sessionId>/subagents/` (Claude Code 2.1.x subagents, and the workflow
      journals in `subagents/workflows/wf_<id>/journal.jsonl` whose lines name no session):
      the parent session, the folder above `subagents`;
    - a Codex rollout `rollout-<time>-<uuid>.jsonl`: the uuid (its `session_meta` id);
    - otherwise the file's name: Claude Code writes `<sessionId>.jsonl`.
    """
    if session_id:
        return session_id
    p = PurePath(path)
    folders = p.parts[:-1]
    if "subagents" in folders:
        at = len(folders) - 1 - folders[::-1].index("subagents")
        if at > 0:
            return folders[at - 1]
    stem = p.stem
    if stem.startswith("rollout-") and len(stem) > 45 and stem[-37] == "-":
        return stem[-36:]
    return stem


def tool_use(tool_use_id: str, session_id: str, name: str, input_json: bytes, message_key: str,
             timestamp: str) -> ToolCall:
    """The first half of a tool call: the assistant asked for it."""
    return ToolCall(tool_use_id=tool_use_id, session_id=session_id, name=name,
                    use_message_key=message_key, input_json=input_json, started_at=timestamp,
                    has_use=True)


def tool_result(tool_use_id: str, session_id: str, is_error: bool, message_key: str,
                timestamp: str, agent_id: str = "") -> ToolCall:
    """The second half: the result came back (the store merges it with the first).

    `agent_id` is the subagent a Task/Agent call ran, which links the subagent's records
    (they carry the same agentId) to the call that started them."""
    return ToolCall(tool_use_id=tool_use_id, session_id=session_id,
                    result_message_key=message_key, is_error=is_error, finished_at=timestamp,
                    has_result=True, agent_id=agent_id)
