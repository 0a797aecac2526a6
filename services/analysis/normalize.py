"""The thin normalisation pass: storage keys, session ids and tool calls.

Plain functions and one small stateful resolver; nothing here knows about gRPC. The threading,
context and tool-pattern analyses build on this module's output in later stages.
"""

from __future__ import annotations

import hashlib
from collections import OrderedDict
from pathlib import PurePath

from threadline.records import ToolCall


def message_key(uuid: str, project_key: str, path: str, byte_offset: int, raw: bytes) -> str:
    """The uuid when there is one; otherwise a stable hash of source and line.

    The hash covers the file name (not its full path, so a copied folder imports the same
    keys), the byte offset and the line itself: exact re-emits at other offsets stay distinct
    records, and re-reading the same line never duplicates it.
    """
    if uuid:
        return uuid
    digest = hashlib.blake2b(digest_size=12)
    digest.update(f"{project_key}/{PurePath(path).name}:{byte_offset}:".encode())
    digest.update(raw)
    return "line:" + digest.hexdigest()


class SessionResolver:
    """Gives every record a session id.

    Records without one (file-history-snapshot, summary, some metadata lines) belong to the
    session of the file they are in: the last session id seen in that file, or else the file's
    stem (Claude Code names session files `<sessionId>.jsonl`). Bounded: the least recently
    used files are forgotten and fall back to the stem until a record names the session again.
    """

    def __init__(self, max_files: int = 4096):
        self._last: OrderedDict[str, str] = OrderedDict()
        self._max = max_files

    def resolve(self, path: str, session_id: str) -> str:
        if session_id:
            if self._last.get(path) != session_id:
                self._last[path] = session_id
                if len(self._last) > self._max:
                    self._last.popitem(last=False)
            self._last.move_to_end(path)
            return session_id
        known = self._last.get(path)
        return known if known is not None else PurePath(path).stem

    def forget(self, path: str) -> None:
        self._last.pop(path, None)


def tool_use(tool_use_id: str, session_id: str, name: str, input_json: bytes, message_key: str,
             timestamp: str) -> ToolCall:
    """The first half of a tool call: the assistant asked for it."""
    return ToolCall(tool_use_id=tool_use_id, session_id=session_id, name=name,
                    use_message_key=message_key, input_json=input_json, started_at=timestamp,
                    has_use=True)


def tool_result(tool_use_id: str, session_id: str, is_error: bool, message_key: str,
                timestamp: str) -> ToolCall:
    """The second half: the result came back (the store merges it with the first)."""
    return ToolCall(tool_use_id=tool_use_id, session_id=session_id,
                    result_message_key=message_key, is_error=is_error, finished_at=timestamp,
                    has_result=True)
