"""Relationships a real user prompt has with earlier messages that the reply tree does not show.

`RelationshipFinder` (one per session) is fed every record in arrival order, like
`SegmentTracker`, with the segment the tracker put it in. It finds two kinds (the structural
`response` and `tool_continuation` links come from the reply tree), at typed prompts only
(not commands or interruptions):

- `reference`: the prompt points back at an earlier message. Evidence, each with a strength:
  a path or code identifier in the prompt's first `PROMPT_SCAN_CHARS` characters that an
  earlier message (within the last `REFERENCE_WINDOW` records) mentioned; the target is the
  latest message that did. Quoted path (in backticks or quotes) 0.7, path 0.55, quoted
  identifier 0.55, a file name only 0.45, identifier 0.4, capitalised name (`GitHub`,
  `DataTable`) 0.3, each reduced by up to 30 % with its distance in the window. And
  back-pointing phrases: 0.45 when the phrase says what it points at ("that error" -> the
  latest failed or error-reporting tool result or error-pasting prompt, "the file you just
  edited" -> the latest file change, "that command" -> the latest shell call, "as you said"
  -> the latest assistant text, "as I said" -> the user's previous prompt), 0.35 for generic
  ones ("the previous one", "like before" -> the latest assistant text). The strongest
  `EVIDENCE_PER_TARGET` items for one target are combined as independent evidence
  (1 - product of (1 - strength)), capped at `MAX_CONFIDENCE`; targets under
  `MIN_REFERENCE` are dropped, at most `MAX_REFERENCES` are kept, strongest first.
- `topic_follow_up`: the prompt returns to the topic of an earlier segment: the cosine of its
  words with that segment's prompt words is at least `FOLLOW_SIMILARITY` and beats the cosine
  with the current segment by `FOLLOW_MARGIN`. Target: the segment's first message;
  confidence: that cosine (capped at `MAX_CONFIDENCE`).

State is bounded: an LRU map of recently mentioned paths and identifiers (`MENTION_CAP`
entries), the keys of the latest messages of a few kinds, and the prompt-word vectors of the
current segment and the last `FOLLOW_SEGMENTS` closed ones (each capped).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import orjson

from services.analysis import text as textmeasures
from services.analysis.segments import TermBag, clean, combine, is_command, is_interruption
from threadline.domain.analysis import PromptAnalysis, Relationship
from threadline.domain.records import Record

REFERENCE_WINDOW = 500
MENTION_CAP = 3000
MENTION_TEXT_CHARS = 3000
# Of what is not a prompt (assistant text, tool output), only the start is indexed: names
# worth pointing back to come early, and scanning long outputs was most of the cost.
RECORD_SCAN_CHARS = 800
TOOL_OUTPUT_SCAN_CHARS = 300
MENTIONS_PER_RECORD = 60
PROMPT_TOKENS = 40
MAX_REFERENCES = 3
MAX_CONFIDENCE = 0.95
DISTANCE_DISCOUNT = 0.3
MIN_REFERENCE = 0.35
# Only the start of a prompt is searched for paths and identifiers: beyond it is mostly pasted
# output, whose names the user did not choose. Per target, the three strongest items count.
PROMPT_SCAN_CHARS = 600
EVIDENCE_PER_TARGET = 3

QUOTED_PATH = 0.7
PATH = 0.55
QUOTED_IDENTIFIER = 0.55
FILE_NAME = 0.45
IDENTIFIER = 0.4
# A capitalised compound alone (`GitHub`, `PostgreSQL`, `DataTable`) is as often a product
# name as a code name: too weak alone (below MIN_REFERENCE), evidence with anything else.
NAME = 0.3
NAMED_PHRASE = 0.45
GENERIC_PHRASE = 0.35

FOLLOW_SIMILARITY = 0.3
FOLLOW_MARGIN = 0.1
FOLLOW_MIN_TERMS = 3
FOLLOW_SEGMENTS = 8
FOLLOW_TERMS_CAP = 120

_EXTENSIONS = frozenset("""
py pyi js mjs cjs ts tsx jsx json jsonl md rst txt toml yaml yml ini cfg conf env sh bash zsh
fish ps1 bat rs go java kt kts scala c h cc cpp hpp cs swift m mm rb php pl lua r sql proto
graphql css scss sass less html htm vue svelte xml csv tsv log lock gradle make mk cmake
dockerfile ipynb zip gz tgz tar pdf png jpg jpeg gif svg wasm so dll exe db sqlite
""".split())
_PATH = re.compile(r"(?<![\w/.~@-])(?:[@~]|\.{1,2})?/?(?:[\w.@~-]+/)+[\w.@-]*\w"
                   r"|\b[\w-]{2,}\.[A-Za-z][A-Za-z0-9]{0,9}\b")
_IDENTIFIER = re.compile(
    r"\b[A-Za-z]\w*_\w+\b|\b[a-z]+[A-Z]\w*\b|\b[A-Z][a-z0-9]+[A-Z]\w*\b"
    r"|\b[A-Za-z_]\w*\.[A-Za-z_]\w*(?:\.[A-Za-z_]\w*)*")
_QUOTED = re.compile(r"`([^`\n]{2,120})`|\"([^\"\n]{2,120})\"|'([^'\s][^'\n]{0,118}[^'\s])'")
_NOT_FILES = frozenset({"e.g", "i.e", "etc", "vs", "a.m", "p.m"})

# (pattern, what it points at, strength)
_PHRASES: tuple[tuple[re.Pattern[str], str, float], ...] = tuple(
    (re.compile(pattern), target, strength) for pattern, target, strength in (
        (r"\b(that|the same|the previous|the last|the above|this same) (error|exception|"
         r"traceback|failure|stack ?trace)\b|\bthe error (above|again|before|from before)\b",
         "error", NAMED_PHRASE),
        (r"\bthe (file|files|changes?|edits?|script|test|tests|code) you (just |have |had )?"
         r"(created|wrote|written|edited|made|changed|added|modified|updated)\b"
         r"|\byou just (created|wrote|edited|changed|added|modified|updated)\b",
         "change", NAMED_PHRASE),
        (r"\b(the|that) command you (just )?(ran|run|used|suggested)\b|\bthat command\b",
         "command", NAMED_PHRASE),
        (r"\b(as|like) you (said|mentioned|suggested|described|explained|noted|proposed)\b"
         r"|\byou (said|mentioned|suggested|proposed) (earlier|before|above)\b"
         r"|\byour (previous|last|earlier) (answer|suggestion|explanation|plan|response|reply)\b",
         "answer", NAMED_PHRASE),
        (r"\b(as|like) i (said|mentioned|asked|wrote)\b|\bi (already )?told you\b"
         r"|\bmy (previous|last|earlier) (message|prompt|request|question)\b",
         "prompt", NAMED_PHRASE),
        (r"\bthe previous (one|answer|step|version|message|output|approach|attempt)\b"
         r"|\b(like|as) before\b|\b(mentioned|said|discussed|shown) (earlier|above|before)\b"
         r"|\bfrom (earlier|before)\b|\bthe (one|thing|output) above\b",
         "answer", GENERIC_PHRASE),
    )
)
_CHANGE_TOOLS = frozenset({"Write", "Edit", "MultiEdit", "NotebookEdit", "apply_patch",
                           "write_file", "replace"})
_COMMAND_TOOLS = frozenset({"Bash", "shell", "local_shell", "exec_command", "run_shell_command"})
_ERROR_WORDS = re.compile(r"\b(error|exception|traceback|failed|failure)\b", re.I)


@dataclass(slots=True)
class _SegmentTerms:
    index: int
    start_key: str
    title: str
    terms: TermBag


def _normal(token: str, cwd: str) -> str:
    token = token.strip().rstrip(".,:;!?)]}'\"").lstrip("([{'\"@")
    if token.startswith("./"):
        token = token[2:]
    if cwd and token.startswith(cwd.rstrip("/") + "/"):
        token = token[len(cwd.rstrip("/")) + 1:]
    return token


def _is_path(token: str) -> bool:
    """A file name with a known extension, or a path that looks like one: rooted (`/`, `~`,
    `.`), three parts or more, or ending in a file name (not `1/8`, `y/N`, `text/html`)."""
    if "/" in token:
        if token.startswith(("http:", "https:")):
            return False
        if token.startswith(("/", "~", ".")) or token.count("/") >= 2:
            return True
        token = token.rsplit("/", 1)[1]
    name, _, ext = token.rpartition(".")
    return bool(name) and ext.lower() in _EXTENSIONS and token.lower() not in _NOT_FILES


def mentions(text: str, cwd: str = "") -> list[str]:
    """Paths (with their file names) and code identifiers named in a text, in order."""
    text = text[:MENTION_TEXT_CHARS]
    found: list[str] = []
    for raw in _PATH.findall(text):
        token = _normal(raw, cwd)
        if len(token) < 3 or not _is_path(token):
            continue
        found.append(token)
        if "/" in token:
            name = token.rsplit("/", 1)[1]
            if _is_path(name):
                found.append(name)
    # Identifiers outside the paths (not `test_x` again out of `tests/test_x.py`).
    for raw in _IDENTIFIER.findall(_PATH.sub(_blank_paths, text)):
        token = _normal(raw, cwd)
        if len(token) >= 3 and token.lower() not in _NOT_FILES:
            found.append(token)
    return found[:MENTIONS_PER_RECORD]


def _blank_paths(match: re.Match[str]) -> str:
    return " " if _is_path(_normal(match.group(0), "")) else match.group(0)


def _quoted(text: str, cwd: str) -> set[str]:
    quoted: set[str] = set()
    for groups in _QUOTED.findall(text):
        inner = next(g for g in groups if g)
        if " " in inner.strip():
            quoted.update(mentions(inner, cwd))
        else:
            quoted.add(_normal(inner, cwd))
    return quoted


def _tool_text(rec: Record) -> str:
    """Tool inputs' values (paths, commands, patterns) of a record, as one text."""
    parts: list[str] = []
    for block in rec.content:
        if block.kind == "tool_use" and block.tool_input_json:
            try:
                data = orjson.loads(block.tool_input_json)
            except orjson.JSONDecodeError:
                continue
            if isinstance(data, dict):
                parts.extend(v[:300] for v in data.values() if isinstance(v, str))
        elif block.kind == "tool_result" and block.text:
            parts.append(block.text[:TOOL_OUTPUT_SCAN_CHARS])
    return "\n".join(parts)


class RelationshipFinder:
    """Reference and topic follow-up links of one session (see the module docstring)."""

    def __init__(self, session_id: str = "") -> None:
        self.session_id = session_id
        self._seq = 0
        # mention -> (message key, record number); insertion order = least recent first.
        self._mentions: dict[str, tuple[str, int]] = {}
        # kind of message (error, change, command, answer, prompt) -> (key, record number)
        self._latest: dict[str, tuple[str, int]] = {}
        self._current = _SegmentTerms(0, "", "", TermBag(FOLLOW_TERMS_CAP))
        self._closed: list[_SegmentTerms] = []

    def add(self, rec: Record, prompt: str | None, analysis: PromptAnalysis | None,
            segment_index: int, segment_start_key: str = "") -> list[Relationship]:
        """Account one record; return the relationships its prompt has (if it is one).

        `segment_start_key` (the tracker's `current_start_key`) lets a merge be told from a
        segment that merely keeps its index; without it segments are told apart by index."""
        self._seq += 1
        if not self.session_id:
            self.session_id = rec.session_id
        key = rec.key or rec.uuid
        self._follow_segment(segment_index, segment_start_key, key)
        found: list[Relationship] = []
        typed = (prompt is not None and not is_command(prompt, analysis)
                 and not is_interruption(prompt, analysis))
        if typed:
            body = clean(prompt)
            found.extend(self._references(body, rec.cwd, key))
            vector = textmeasures.term_vector(body[:2000])
            follow = self._follow_up(vector, key)
            if follow is not None:
                found.append(follow)
            self._current.terms.add(vector.elements())
            if not self._current.title:
                self._current.title = body[:60]
        self._remember(rec, prompt, key)
        return found

    # --- references ---------------------------------------------------------------------

    def _references(self, body: str, cwd: str, key: str) -> list[Relationship]:
        evidence: dict[str, list[tuple[float, str]]] = {}
        head = body[:PROMPT_SCAN_CHARS]
        quoted = _quoted(head, cwd)
        seen: set[str] = set()
        for token in mentions(head, cwd)[:PROMPT_TOKENS]:
            if token in seen:
                continue
            seen.add(token)
            hit = self._mentions.get(token)
            if hit is None:
                continue
            target, at = hit
            distance = self._seq - at
            if distance > REFERENCE_WINDOW or target == key:
                continue
            path = _is_path(token)
            if "/" in token:  # its file name, next in the list, is the same evidence
                seen.add(token.rsplit("/", 1)[1])
            if token in quoted:
                strength, what = (QUOTED_PATH, "quoted path") if path else (
                    QUOTED_IDENTIFIER, "quoted identifier")
            elif path:
                strength, what = (PATH, "path") if "/" in token else (FILE_NAME, "file name")
            elif token[0].isupper() and token.isalnum():
                strength, what = NAME, "name"
            else:
                strength, what = IDENTIFIER, "identifier"
            strength *= 1.0 - DISTANCE_DISCOUNT * distance / REFERENCE_WINDOW
            evidence.setdefault(target, []).append(
                (strength, f"{what} {token[:80]} ({distance} records back)"))
        lowered = body[:1000].lower()
        for pattern, kind, strength in _PHRASES:
            found = pattern.search(lowered)
            if not found:
                continue
            latest = self._latest.get(kind)
            if latest is None or self._seq - latest[1] > REFERENCE_WINDOW:
                continue
            evidence.setdefault(latest[0], []).append(
                (strength, f'phrase "{found.group(0)}" -> latest {kind}'))
        ranked = []
        for target, items in evidence.items():
            items.sort(key=lambda item: -item[0])  # stable: ties keep first-found order
            items = items[:EVIDENCE_PER_TARGET]
            confidence = min(MAX_CONFIDENCE, combine(s for s, _ in items))
            if confidence >= MIN_REFERENCE:
                ranked.append((confidence, target, "; ".join(text for _, text in items)))
        ranked.sort(key=lambda item: -item[0])  # stable: ties keep first-found order
        return [Relationship(source_key=key, target_key=target, kind="reference",
                             confidence=round(confidence, 4), evidence=text,
                             session_id=self.session_id)
                for confidence, target, text in ranked[:MAX_REFERENCES]]

    def _remember(self, rec: Record, prompt: str | None, key: str) -> None:
        """Index what this record mentions and which kinds of message it is."""
        seq = self._seq
        latest = self._latest
        if prompt is not None:
            latest["prompt"] = (key, seq)
            if _ERROR_WORDS.search(prompt[:2000]):  # an error the user pasted
                latest["error"] = (key, seq)
            text = prompt
        else:
            text = rec.text[:RECORD_SCAN_CHARS] if rec.role in ("assistant", "user", "tool") else ""
            if rec.role == "assistant" and rec.text:
                latest["answer"] = (key, seq)
            tools = _tool_text(rec)
            if tools:
                text = text[:MENTION_TEXT_CHARS // 2] + "\n" + tools
            for block in rec.content:
                if block.kind == "tool_use":
                    if block.tool_name in _CHANGE_TOOLS:
                        latest["change"] = (key, seq)
                    elif block.tool_name in _COMMAND_TOOLS:
                        latest["command"] = (key, seq)
                elif block.kind == "tool_result" and (
                        block.is_error or _ERROR_WORDS.search(block.text[:2000])):
                    latest["error"] = (key, seq)
        if not text:
            return
        table = self._mentions
        for token in mentions(text, rec.cwd):
            table.pop(token, None)
            table[token] = (key, seq)
        while len(table) > MENTION_CAP:
            del table[next(iter(table))]

    # --- topic follow-ups ---------------------------------------------------------------

    def _follow_segment(self, index: int, start_key: str, key: str) -> None:
        current = self._current
        if index == current.index and (not start_key or not current.start_key
                                       or start_key == current.start_key):
            current.start_key = current.start_key or start_key or key
            return
        if index > current.index:
            if current.terms.counts:
                self._closed.append(current)
        else:
            # The segment before `index` absorbed the open one (a merge), or a replay began.
            self._closed = [seg for seg in self._closed if seg.index < index]
            if self._closed and self._closed[-1].index == index - 1:
                self._closed[-1].terms.absorb(current.terms)
        del self._closed[:-FOLLOW_SEGMENTS]
        self._current = _SegmentTerms(index, start_key or key, "", TermBag(FOLLOW_TERMS_CAP))

    def _follow_up(self, vector, key: str) -> Relationship | None:
        if len(vector) < FOLLOW_MIN_TERMS or not self._closed:
            return None
        here = textmeasures.cosine(vector, self._current.terms.counts)
        best, best_seg = 0.0, None
        for seg in self._closed:
            score = textmeasures.cosine(vector, seg.terms.counts)
            if score > best:
                best, best_seg = score, seg
        if best_seg is None or best < FOLLOW_SIMILARITY or best < here + FOLLOW_MARGIN:
            return None
        shared = sorted(set(vector) & set(best_seg.terms.counts),
                        key=lambda t: (-best_seg.terms.counts[t], t))[:5]
        evidence = (f"cosine {best:.2f} with segment {best_seg.index} ({best_seg.title!r}) vs "
                    f"{here:.2f} with the current one; shared: {', '.join(shared)}")
        return Relationship(source_key=key, target_key=best_seg.start_key,
                            kind="topic_follow_up", confidence=round(min(MAX_CONFIDENCE, best), 4),
                            evidence=evidence, session_id=self.session_id)

    def state_sizes(self) -> dict[str, int]:
        """Sizes of every container the finder holds (for tests of bounded memory)."""
        sizes = {"mentions": len(self._mentions), "latest": len(self._latest),
                 "closed": len(self._closed), "current.terms": len(self._current.terms.counts)}
        for n, seg in enumerate(self._closed):
            sizes[f"closed{n}.terms"] = len(seg.terms.counts)
        return sizes


__all__ = ["RelationshipFinder", "mentions"]
