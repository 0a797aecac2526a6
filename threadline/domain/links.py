"""A record's link in threadline's reply tree, as stored and read back: its parent, where the
link came from (recorded by the source or inferred by analysis), what kind of link it is and
how sure analysis is of it. The rules that choose links live in services/analysis/thread_links.py.
"""

from __future__ import annotations

from dataclasses import dataclass

RECORDED = "recorded"
INFERRED = "inferred"
RESPONSE = "response"
TOOL_CONTINUATION = "tool_continuation"


@dataclass(slots=True, frozen=True)
class ThreadLink:
    parent_uuid: str = ""
    source: str = ""  # recorded, inferred, or "" for a root / a record without uuid
    relation: str = ""  # response, tool_continuation, or ""
    confidence: float = 0.0
    rule: str = ""  # the inference rule, or "parentUuid" when recorded
