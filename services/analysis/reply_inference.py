"""Infer each record's parent in the reply tree when the transcript does not say it.

Codex, Gemini, generic chat lines and old exports carry no parent links; Claude Code does
(`parentUuid`), and its transcripts are what these rules were read from (see the shared
transcript-format notes, sections 4 and 5). `ReplyThreader.step(rec)` takes one file's
records one at a time, in file order, and returns each one's inferred parent ("" for none)
and the rule that chose it; `infer_parents(records)` does the same for a whole file.

The rules, in the order they are tried:

1. Only records with a `uuid` can be parents. `summary`, `file-history-snapshot`,
   `queue-operation` and the small metadata lines have none; they get "" and are skipped
   (a line after them chains to the last record that has a uuid).
2. Roots: the first uuid-bearing record of a file; a `system/compact_boundary` (2.0.60+
   writes it with `parentUuid:null`, the old leaf goes to `logicalParentUuid`); a 1.0.x
   compaction summary (`isCompactSummary` user line with no boundary before it, also
   `parentUuid:null`). After a boundary, the summary line is the boundary's child by rule 6.
3. Inline side-chains (1.0.x `Task` subagents written into the main file): the subagent's
   first user line repeats the `prompt` of a `Task`/`Agent` tool_use that has no result
   yet, and is written with `parentUuid:null`. It starts a side chain; the following records
   continue that side chain until the `Task`'s tool_result comes back, which continues the
   main chain (where its tool_use is).
4. Tool results. A user line holding tool_result blocks answers the line holding the
   matching tool_use. From 2.1 on, parallel results are siblings: each result's parent is
   the line with its own tool_use (1,169 of 1,365 2.1.x results in the corpus point to a
   line other than the one just before; all 1,169 are the tool_use line, in three source
   folders). Before 2.1 (1.0.x, 2.0.x) the results of a parallel batch chain one after the
   other like any other line (605 of the 638 results whose tool_use is not the line just
   before point to the line just before, in seven folders; 31 of the other 33 are 1.0.x
   Task results after an inline side chain, rule 3; two point outside the file), so the
   rule only picks the chain (main or side) that holds the tool_use and continues it. A
   line with no version is read as the newest format.
5. Progress lines (2.x hook and tool progress) need no rule of their own: they carry the id
   of the tool call they report on (`toolUseID`/`parentToolUseID`, kept as the first block's
   `tool_use_id`), but their `parentUuid` is the line written just before them (all 6,981
   progress lines of the corpus are inferred right by rule 6), so the id is not used.
6. Otherwise: the last record of the current chain (streaming splits of one response are
   chained one line per content block, so "the line before" is right for them).
"""

from __future__ import annotations

from collections.abc import Sequence

import orjson

from threadline.records import Record

# Tools whose tool_use starts a subagent (`Task`, renamed `Agent` in 2.1.63).
AGENT_TOOLS = frozenset({"Task", "Agent"})


def _version(text: str) -> tuple[int, ...]:
    """`"2.1.3"` -> (2, 1, 3); unknown or missing -> () (treated as the newest format)."""
    parts = []
    for piece in text.split("."):
        digits = ""
        for ch in piece:
            if not ch.isdigit():
                break
            digits += ch
        if not digits:
            break
        parts.append(int(digits))
    return tuple(parts)


def _sibling_results(rec: Record) -> bool:
    """Whether this writer parents each parallel tool_result on its own tool_use line."""
    version = _version(rec.version)
    return not version or version >= (2, 1)


def _agent_prompt(rec: Record) -> str:
    """The prompt a Task/Agent tool_use hands its subagent ("" for any other line)."""
    for block in rec.content:
        if block.kind == "tool_use" and block.tool_name in AGENT_TOOLS and block.tool_input_json:
            try:
                data = orjson.loads(block.tool_input_json)
            except orjson.JSONDecodeError:
                return ""
            prompt = data.get("prompt") if isinstance(data, dict) else None
            return prompt.strip() if isinstance(prompt, str) else ""
    return ""


def _results(rec: Record) -> list[str]:
    return [b.tool_use_id for b in rec.content if b.kind == "tool_result" and b.tool_use_id]


# Per-file memory is bounded: a tool_result answers a tool_use written shortly before it, and
# a subagent prompt is matched soon after its Task call, so only the most recent ones are kept.
MAX_REMEMBERED_USES = 4096
MAX_PENDING_PROMPTS = 256

# Names of the rules, as reported with each inferred parent (and calibrated by make eval).
FIRST = "first_record"
COMPACTION = "compaction_root"
SIDE_CHAIN = "side_chain_start"
TOOL_RESULT = "tool_result"
CHAIN = "previous_in_chain"
NONE = "no_uuid"


class ReplyThreader:
    """Infers parents one record at a time, for one file read in order (see module docstring).

    `step(rec)` returns `(parent uuid, rule)`; the state it keeps is bounded by the limits above
    however long the file grows, so a live file can be followed indefinitely.
    """

    __slots__ = ("_tips", "_active", "_next_chain", "_uses", "_prompts", "_side_of",
                 "_seen_uuid", "_after_boundary")

    def __init__(self) -> None:
        # Chains: 0 is the main conversation; others are inline side chains (rule 3).
        self._tips: dict[int, str] = {0: ""}
        self._active = 0
        self._next_chain = 1
        # tool_use id -> (line uuid, chain) for rules 3 and 4, oldest first.
        self._uses: dict[str, tuple[str, int]] = {}
        # Pending subagent prompts -> the tool_use id that asked for them (rule 3).
        self._prompts: dict[str, str] = {}
        # tool_use id -> the side chain its subagent runs in.
        self._side_of: dict[str, int] = {}
        self._seen_uuid = False
        self._after_boundary = False

    def step(self, rec: Record, ident: str | None = None) -> tuple[str, str]:
        """The parent of `rec` and the rule that chose it. `ident` is the record's identity in
        the tree (default: its uuid; "" means it is not a node, rule 1)."""
        if ident is None:
            ident = rec.uuid
        if not ident:
            return "", NONE
        tips = self._tips
        parent = tips[self._active]
        chain = self._active
        rule = CHAIN
        results = _results(rec)
        if not self._seen_uuid:
            parent, rule = "", FIRST
        elif rec.type == "system" and rec.subtype == "compact_boundary":
            parent, rule = "", COMPACTION
        elif rec.subtype == "compact_summary" and not self._after_boundary:
            parent, rule = "", COMPACTION
        elif rec.type == "user" and not results and rec.text.strip() in self._prompts:
            chain = self._next_chain
            self._next_chain += 1
            tips[chain] = ""
            self._side_of[self._prompts.pop(rec.text.strip())] = chain
            parent, rule = "", SIDE_CHAIN
        elif results and results[0] in self._uses:
            use_uuid, chain = self._uses[results[0]]
            parent = use_uuid if _sibling_results(rec) else tips.get(chain, parent)
            rule = TOOL_RESULT
            if results[0] in self._side_of:  # a subagent's own answer: its side chain is over
                tips.pop(self._side_of.pop(results[0]), None)

        self._seen_uuid = True
        self._after_boundary = rec.type == "system" and rec.subtype == "compact_boundary"
        if chain not in tips:
            chain = 0
        tips[chain] = ident
        self._active = chain
        for block in rec.content:
            if block.kind == "tool_use" and block.tool_use_id:
                self._uses[block.tool_use_id] = (ident, chain)
        _trim(self._uses, MAX_REMEMBERED_USES)
        _trim(self._side_of, MAX_PENDING_PROMPTS)  # subagents whose result never came back
        while len(tips) > MAX_PENDING_PROMPTS + 1:
            oldest = next(c for c in tips if c != 0 and c != self._active)
            del tips[oldest]
        prompt = _agent_prompt(rec)
        if prompt:
            for block in rec.content:
                if block.kind == "tool_use" and block.tool_name in AGENT_TOOLS:
                    self._prompts[prompt] = block.tool_use_id
                    break
            _trim(self._prompts, MAX_PENDING_PROMPTS)
        return parent, rule


def _trim(table: dict, limit: int) -> None:
    """Drop the oldest entries (dicts keep insertion order) beyond `limit`."""
    while len(table) > limit:
        del table[next(iter(table))]


def infer_parents(records: Sequence[Record]) -> list[str]:
    """The inferred parent uuid of each record, in order ("" for a root or a non-message)."""
    threader = ReplyThreader()
    return [threader.step(rec)[0] for rec in records]


__all__ = ["AGENT_TOOLS", "ReplyThreader", "infer_parents"]
