"""Topical segments of a session, found incrementally, one record at a time.

`SegmentTracker` (one per session) is fed every record of the session in arrival order, with
the real user prompt's text and figures when the record is one. It keeps only fixed-size
state: the open segment, the one closed before it (so a short segment can still be merged
into it), a window of recent pauses and capped term and working-set samples. Nothing
depends on the wall clock or on hashing order, so replaying the stored records rebuilds the
same segments (the service does that after evicting a session).

A boundary is placed only at a real user prompt, or at a `/clear` or a compaction. Its
evidence, each with a 0..1 score (docs/analysis.md, "Topical segments"):

- `time_gap`: the user paused much longer than usual in this session. The pause is the time
  from the last activity (assistant record, tool result or prompt, in arrival order; side
  chains excluded) to the prompt. The threshold is `GAP_FACTOR` x the upper quartile of the
  last `GAP_WINDOW` pauses, kept within [`GAP_FLOOR`, `GAP_CEILING`] (`GAP_DEFAULT` until
  `GAP_MIN_SAMPLES` pauses are known). Score: gap / (gap + threshold), 0.5 at the threshold.
- `clear`: the `/clear` command (score 1.0: the user threw the context away).
- `compaction`: `system/compact_boundary`, the compaction summary line (Claude Code 1.0.x
  writes only that), Codex `compacted`. Score 0.8 when the user asked for it (`manual`), 0.5
  when the context ran full (`auto`, mostly mid-task), 0.6 when unknown.
- `explicit_switch`: the user says so near the start of the prompt ("new topic",
  "unrelated:", "next task", "back to"...); 0.9 for unambiguous phrases, 0.6 or 0.5 for
  weaker ones.
- `working_set`: the files, folders, search patterns and uncommon tools the assistant touched
  since the previous prompt barely overlap the open segment's working set. Score: Jaccard
  distance x min(1, smaller side's items / 8) x (1 - cosine of the prompt's words with the
  segment's words); it counts from `WS_MIN_SCORE` on. The drift is seen one turn late (the
  turn that went elsewhere was asked for by the prompt before), hence the strict threshold.

Pauses and working-set changes count only at prompts that can open a topic (intent request,
question or exploration): an approval or feedback after a pause continues the exchange.
Commands other than `/clear` open no segment; a pause before one is carried to the next
prompt. Interruptions are no boundary and their pause is not part of the session's pace.
Evidence that meets a segment with no prompt yet (a compaction and its summary, a `/clear`
after a compaction) joins that segment's reason instead of opening an empty one. Several kinds
of evidence at one prompt are joined with "+" and their scores combined as independent
evidence: 1 - product of (1 - score).

Merging: when a segment closes with at most `MERGE_MAX_PROMPTS` prompts, was opened only by
soft evidence (pause, working set, compaction: not by the user's own words or `/clear`), and
either its pause was weak (score below `WEAK_GAP_SCORE`, gap < 1.5 x threshold, and nothing
else) or its words are like the segment before it (cosine of the term vectors at least
`MERGE_SIMILARITY`), it is merged into that segment (see `SegmentTracker._open`).

Each segment's title is its first typed prompt (not a command or interruption; a command's
`/name args` stands in until one comes), cut to `TITLE_CHARS` on a word boundary. Keywords
are the segment's terms (its prompts' and the start of its assistant texts', prompts
weighted double) ranked by TF-IDF against the session's other segments, refreshed at each
prompt, every `KEYWORDS_REPLIES` assistant texts, and when a segment closes or is extended
by a merge. Coherence is the mean
`similarity_previous` of the segment's prompts after its first (the first one's is with the
segment before); 1.0 with fewer than two prompts.
"""

from __future__ import annotations

import re
from collections import Counter, deque
from collections.abc import Iterable
from datetime import UTC, datetime

import orjson

from services.analysis import text as textmeasures
from threadline.domain.analysis import PromptAnalysis, Segment
from threadline.domain.records import Record

# --- time gap ----------------------------------------------------------------------------
# Pauses before prompts (seconds) in the corpus: median 18 s, upper quartile 81 s, 90th
# percentile 300 s; many are ~0 (prompts queued while the assistant worked, answers right
# after an interruption), so the median says little about a session's ordinary pause. The
# upper quartile is the ordinary long pause of this session; four times that is unusual.
GAP_WINDOW = 24
GAP_MIN_SAMPLES = 5
GAP_QUANTILE = 0.75
GAP_FACTOR = 4.0
# Below 10 minutes a pause is a coffee, not a new sitting; above 4 hours it always is one.
GAP_FLOOR = 600.0
GAP_CEILING = 4 * 3600.0
# Until a session has shown its pace: the usual inactivity timeout of web analytics.
GAP_DEFAULT = 1800.0
# A time gap scoring below this (gap < 1.5 x threshold) is weak: see merging.
WEAK_GAP_SCORE = 0.6

# --- working set -------------------------------------------------------------------------
WS_DISTANCE = 0.8
WS_MIN_RECENT = 3
WS_MIN_SEGMENT = 5
WS_FULL_EVIDENCE = 8
# The change is seen one turn late (the turn that drifted was asked for by the prompt before),
# so it takes strong evidence alone: a large, disjoint change and a prompt whose words are
# new to the segment.
WS_MIN_SCORE = 0.5
WS_SEGMENT_CAP = 200
WS_TURN_CAP = 64
# Tools used in nearly every turn of any topic: their names say nothing about the topic
# (their paths do). Other tools (MCP servers, web, notebooks) are items of the working set.
COMMON_TOOLS = frozenset({
    "Read", "Edit", "MultiEdit", "Write", "Bash", "Glob", "Grep", "LS", "TodoWrite",
    "TodoRead", "Task", "Agent", "BashOutput", "KillShell", "KillBash", "ExitPlanMode",
    "shell", "local_shell", "apply_patch", "update_plan", "exec_command", "write_stdin",
    "read_file", "write_file", "replace", "run_shell_command", "list_directory", "glob",
    "search_file_content", "read_many_files",
})
_PATH_KEYS = ("file_path", "path", "notebook_path", "filePath", "file", "absolute_path",
              "dir_path", "directory")
_PATTERN_KEYS = ("pattern", "glob", "query")
_COMMAND_KEYS = ("command", "cmd")
# Path-like words of a shell command: something with a slash, or a name with an extension.
_COMMAND_PATH = re.compile(r"(?:[\w.~-]*/)+[\w.-]+|[\w-]+\.[A-Za-z][A-Za-z0-9]{0,4}\b")

# --- explicit switches (searched in the first EXPLICIT_SPAN characters) -----------------
EXPLICIT_SPAN = 160
_SWITCHES: tuple[tuple[re.Pattern[str], float], ...] = tuple(
    (re.compile(pattern), score) for pattern, score in (
        (r"\b(new|different|another|separate|unrelated) (topic|subject)\b", 0.9),
        (r"\b(change|changing|switch|switching) (of |the )?(topic|subject)s?\b", 0.9),
        (r"\bunrelated\b", 0.9),
        (r"\b(different|separate|unrelated|new) (question|issue|task|problem)\b", 0.9),
        (r"\b(completely|totally|entirely) (different|unrelated|separate)\b", 0.9),
        (r"\bon (a|an) (different|other|unrelated) note\b|\bon another note\b", 0.9),
        (r"\bswitch(ing)? gears\b", 0.9),
        (r"\b(let'?s|let us|now|ok,?|okay,?) (move|moving) on\b|\bmoving on\b", 0.6),
        (r"\bnext (task|topic|thing|item|up)\b", 0.6),
        (r"^(ok,? |okay,? |now,? )?(a )?(new|another) (feature|request|idea|bug)\b", 0.6),
        (r"\b(go|going|get|getting|come|coming) back to\b|^(ok,? |okay,? |now,? |so,? )?back to\b",
         0.6),
        (r"\bsomething (else|different)\b|\banother (question|thing|task)\b", 0.6),
        (r"\b(let'?s|now|can we|could we) (work on|look at|turn to|switch to)\b", 0.5),
        (r"\bswitching to\b", 0.5),
    )
)

# --- keywords, terms, titles -------------------------------------------------------------
KEYWORDS_TOP = 8
# Keywords are the segment's terms ranked by TF-IDF (text.tfidf_keywords), the segments of
# the session so far being the documents: cheap on the bounded term bag, so the open
# segment's keywords are refreshed at each of its prompts and every KEYWORDS_REPLIES
# assistant texts in a stretch without prompts (an autonomous run after a compaction).
KEYWORDS_REPLIES = 20
# Document frequencies kept per session (the most frequent terms; bounded like the bags).
DF_CAP = 1000
TITLE_CHARS = 80
# Term vectors keep their most frequent terms only (pruned back to TERMS_CAP beyond twice).
TERMS_CAP = 200
PROMPT_TERM_CHARS = 2000
REPLY_TERM_CHARS = 300

# --- times ------------------------------------------------------------------------------
# Only records of the conversation (and the record that opened the segment, e.g. a
# compaction boundary) set a segment's first and last times. Bookkeeping records carry
# other times: a file-history snapshot the time of the message it backs up, a summary none,
# system records (turn durations, hook summaries) times of their own.
CONVERSATION_ROLES = frozenset({"user", "assistant", "tool"})

# --- merging -----------------------------------------------------------------------------
MERGE_MAX_PROMPTS = 2
MERGE_SIMILARITY = 0.3
# Reasons that the user did not state: a short segment started only by these may be merged.
SOFT_REASONS = frozenset({"time_gap", "working_set", "compaction"})
# Pauses and working-set changes are evidence of a new topic only at a prompt that can open
# one; an approval, a correction or feedback after a pause continues the same exchange.
OPENING_INTENTS = frozenset({"request", "question", "exploration"})

_CLEAR = re.compile(r"<command-name>\s*/?clear\s*</command-name>")
_COMMAND_NAME = re.compile(r"<command-name>\s*([^<]*?)\s*</command-name>")
_COMMAND_ARGS = re.compile(r"<command-args>\s*([^<]*?)\s*</command-args>", re.S)
_TAGS = re.compile(r"<(system-reminder|user-prompt-submit-hook|ide_opened_file|ide_selection|"
                   r"ide_diagnostics)>.*?</\1>"
                   r"|</?(command-[a-z]+|local-command-[a-z]+|bash-[a-z]+)>", re.S)
_SLASH_COMMAND = re.compile(r"/[a-z][\w:-]*(\s|$)")
_SPACE = re.compile(r"\s+")


def combine(scores: Iterable[float]) -> float:
    """Independent pieces of evidence: 1 - product of (1 - score)."""
    rest = 1.0
    for score in scores:
        rest *= 1.0 - max(0.0, min(1.0, score))
    return round(1.0 - rest, 4)


def seconds(timestamp: str) -> float | None:
    """POSIX seconds of an ISO-8601 timestamp; None when empty or unreadable."""
    if not timestamp:
        return None
    try:
        moment = datetime.fromisoformat(timestamp)
    except ValueError:
        return None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.timestamp()


class TermBag:
    """A term-count vector that keeps only its most frequent terms (bounded)."""

    __slots__ = ("counts", "cap")

    def __init__(self, cap: int = TERMS_CAP) -> None:
        self.counts: Counter = Counter()
        self.cap = cap

    def add(self, terms: Iterable[str], weight: int = 1) -> None:
        counts = self.counts
        for term in terms:
            counts[term] += weight
        if len(counts) > 2 * self.cap:
            # most_common keeps first-seen order among ties: the same on every replay.
            self.counts = Counter(dict(counts.most_common(self.cap)))

    def absorb(self, other: TermBag) -> None:
        self.counts.update(other.counts)
        if len(self.counts) > 2 * self.cap:
            self.counts = Counter(dict(self.counts.most_common(self.cap)))


def is_command(prompt: str, analysis: PromptAnalysis | None) -> bool:
    if analysis is not None and analysis.intent == "command":
        return True
    return "<command-name>" in prompt or bool(_SLASH_COMMAND.match(prompt.lstrip()))


def can_open_topic(prompt: str, analysis: PromptAnalysis | None) -> bool:
    """Whether a prompt can start a topic (see OPENING_INTENTS; without figures: any prompt
    that is neither a command nor an interruption)."""
    if analysis is not None:
        return analysis.intent in OPENING_INTENTS
    return not is_command(prompt, None) and not is_interruption(prompt, None)


def is_interruption(prompt: str, analysis: PromptAnalysis | None) -> bool:
    if analysis is not None and analysis.intent == "interruption":
        return True
    return prompt.lstrip().startswith("[Request interrupted by user")


def clean(prompt: str) -> str:
    """A prompt as one line of words: hook text and markup tags removed."""
    return _SPACE.sub(" ", _TAGS.sub(" ", prompt)).strip()


def title_of(prompt: str, limit: int = TITLE_CHARS) -> str:
    """The prompt's first `limit` characters, cut on a word boundary, "…" when cut."""
    line = clean(prompt)
    if len(line) <= limit:
        return line
    cut = line[:limit + 1].rsplit(" ", 1)[0] if " " in line[:limit + 1] else line[:limit]
    if len(cut) < limit // 2:  # one very long word (a path, a URL): cut inside it
        cut = line[:limit]
    return cut.rstrip(" ,.;:-") + "…"


def command_title(prompt: str) -> str:
    """`/name args` of a command prompt (a poor title, kept only when nothing better came)."""
    name = _COMMAND_NAME.search(prompt)
    if not name:
        return title_of(prompt)
    args = _COMMAND_ARGS.search(prompt)
    text = name.group(1) + (" " + args.group(1) if args and args.group(1) else "")
    return title_of(text)


def explicit_switch(prompt: str) -> tuple[float, str]:
    """The strongest topic-switch phrase near the prompt's start: (score, phrase)."""
    head = clean(prompt)[:EXPLICIT_SPAN].lower()
    best, phrase = 0.0, ""
    for pattern, score in _SWITCHES:
        if score <= best:
            continue
        found = pattern.search(head)
        if found:
            best, phrase = score, found.group(0)
    return best, phrase


def is_clear(rec: Record, prompt: str | None) -> bool:
    if prompt is not None:
        return bool(_CLEAR.search(prompt)) or prompt.strip() == "/clear"
    return (rec.role == "user" and not rec.is_meta and "<command-name>" in rec.text
            and bool(_CLEAR.search(rec.text)))


def compaction_score(rec: Record) -> float:
    """0 when the record is no compaction; else how deliberate it was (see module doc)."""
    if rec.type == "system" and rec.subtype == "compact_boundary":
        try:
            data = orjson.loads(rec.raw)
            trigger = data.get("compactMetadata", {}).get("trigger", "")
        except (orjson.JSONDecodeError, AttributeError):
            trigger = ""
        return {"manual": 0.8, "auto": 0.5}.get(trigger, 0.6)
    if rec.subtype == "compact_summary" or rec.type == "compacted":
        return 0.6
    if rec.type == "event_msg" and rec.subtype == "context_compacted":
        return 0.6
    return 0.0


def _relative(path: str, cwd: str) -> str:
    path = path.strip()
    if cwd and path.startswith(cwd.rstrip("/") + "/"):
        path = path[len(cwd.rstrip("/")) + 1:]
    return path.rstrip("/")


def working_items(rec: Record) -> list[str]:
    """What the record's tool calls touched: `f:` files, `d:` their folders, `p:` search
    patterns, `t:` uncommon tools. Empty for records without tool_use blocks."""
    items: list[str] = []
    for block in rec.content:
        if block.kind not in ("tool_use", "server_tool_use"):
            continue
        name = block.tool_name
        if name and name not in COMMON_TOOLS:
            items.append("t:" + name)
        if not block.tool_input_json:
            continue
        try:
            data = orjson.loads(block.tool_input_json)
        except orjson.JSONDecodeError:
            continue
        if not isinstance(data, dict):
            continue
        paths: list[str] = []
        for key in _PATH_KEYS:
            value = data.get(key)
            if isinstance(value, str) and value:
                paths.append(value)
        for key in _COMMAND_KEYS:
            value = data.get(key)
            if isinstance(value, list):
                value = " ".join(v for v in value if isinstance(v, str))
            if isinstance(value, str) and value:
                paths.extend(_COMMAND_PATH.findall(value[:2000]))
        for key in _PATTERN_KEYS:
            value = data.get(key)
            if isinstance(value, str) and value:
                items.append("p:" + value[:100].lower())
        for raw in paths[:20]:
            path = _relative(raw, rec.cwd)
            if not path or path.startswith("/dev/"):
                continue
            items.append("f:" + path)
            folder = path.rsplit("/", 1)[0] if "/" in path else ""
            if folder:
                items.append("d:" + folder)
    return items


def jaccard_distance(a: Iterable[str], b: Iterable[str]) -> float:
    a, b = set(a), set(b)
    union = len(a | b)
    return 1.0 - len(a & b) / union if union else 0.0


class _State:
    """One segment being built (or the closed one before it)."""

    __slots__ = ("index", "start_key", "end_key", "first", "last", "opened_at", "title",
                 "title_final", "message_count", "prompt_count", "tool_call_count", "reasons",
                 "score", "sim_sum", "sim_n", "first_sim", "terms", "prompts_added",
                 "replies_added", "working", "keywords", "keywords_at")
    # keywords_at: (prompts, replies, records) the segment had when keywords were computed

    def __init__(self, index: int, reasons: list[str], score: float) -> None:
        self.index = index
        self.start_key = ""
        self.end_key = ""
        self.first: tuple[float, str] | None = None
        self.last: tuple[float, str] | None = None
        # When the record that opened the segment was written: the segment starts no earlier
        # (records written before it and read after it, e.g. a snapshot of an older message,
        # would otherwise pull the start back).
        self.opened_at: float | None = None
        self.title = ""
        self.title_final = False
        self.message_count = 0
        self.prompt_count = 0
        self.tool_call_count = 0
        self.reasons = reasons
        self.score = score
        self.sim_sum = 0.0
        self.sim_n = 0
        # similarity_previous of the first prompt: with the last prompt of the segment
        # before, so not part of this segment's coherence until the two are merged.
        self.first_sim: float | None = None
        self.terms = TermBag()
        # Texts offered to the term bag, to schedule keyword updates.
        self.prompts_added = 0
        self.replies_added = 0
        # An insertion-ordered dict used as a set with least-recently-touched eviction.
        self.working: dict[str, None] = {}
        self.keywords: list[str] = []
        self.keywords_at = (0, 0, 0)

    def touch(self, when: float | None, stamp: str) -> None:
        if when is None:
            return
        if (self.first is None or when < self.first[0]) and (
                self.opened_at is None or when >= self.opened_at):
            self.first = (when, stamp)
        if self.last is None or when > self.last[0]:
            self.last = (when, stamp)

    def remember(self, items: Iterable[str]) -> None:
        working = self.working
        for item in items:
            working.pop(item, None)
            working[item] = None
        while len(working) > WS_SEGMENT_CAP:
            del working[next(iter(working))]

    def coherence(self) -> float:
        return round(self.sim_sum / self.sim_n, 4) if self.sim_n else 1.0

    def refresh_keywords(self, frequency: Counter, documents: int) -> None:
        """TF-IDF over this segment's terms; `frequency` counts the other segments of the
        session that hold each term, `documents` is how many there are."""
        self.keywords = textmeasures.tfidf_keywords(self.terms.counts, frequency, documents,
                                                    KEYWORDS_TOP)
        self.keywords_at = (self.prompts_added, self.replies_added, self.message_count)

    def keywords_due(self) -> bool:
        prompts, replies, _records = self.keywords_at
        return (self.prompts_added > prompts
                or self.replies_added >= replies + KEYWORDS_REPLIES)

    def absorb(self, other: _State) -> None:
        """Extend this segment with the one after it (merging)."""
        self.end_key = other.end_key or self.end_key
        for moment in (other.first, other.last):
            if moment is not None:
                self.touch(*moment)
        if not self.title_final and other.title_final:
            self.title, self.title_final = other.title, True
        elif not self.title:
            self.title = other.title
        self.message_count += other.message_count
        self.prompt_count += other.prompt_count
        self.tool_call_count += other.tool_call_count
        self.sim_sum += other.sim_sum
        self.sim_n += other.sim_n
        if other.first_sim is not None:
            if self.prompt_count - other.prompt_count > 0:
                # The join is now inside the segment: a pair of consecutive prompts.
                self.sim_sum += other.first_sim
                self.sim_n += 1
            elif self.first_sim is None:
                self.first_sim = other.first_sim
        self.terms.absorb(other.terms)
        self.prompts_added += other.prompts_added
        self.replies_added += other.replies_added
        self.remember(other.working)

    def snapshot(self, session_id: str, merged: bool = False) -> Segment:
        return Segment(
            session_id=session_id, index=self.index, start_key=self.start_key,
            end_key=self.end_key, first_timestamp=self.first[1] if self.first else "",
            last_timestamp=self.last[1] if self.last else "", title=self.title,
            keywords=list(self.keywords), message_count=self.message_count,
            prompt_count=self.prompt_count, tool_call_count=self.tool_call_count,
            boundary_reason="+".join(self.reasons), boundary_score=self.score,
            coherence=self.coherence(), merged=merged)


class SegmentTracker:
    """Incremental topical segmentation of one session (see the module docstring)."""

    def __init__(self, session_id: str = "") -> None:
        self.session_id = session_id
        self._current = _State(0, ["start"], 0.0)
        self._previous: _State | None = None
        self._pauses: deque[float] = deque(maxlen=GAP_WINDOW)
        self._last_activity: float | None = None
        # A pause seen before a command, waiting for the next prompt (score, 0 for none).
        self._pending_gap = 0.0
        # What tool calls touched since the last real prompt (capped).
        self._turn: dict[str, None] = {}
        # Closed segments, and how many of them hold each term (for TF-IDF keywords).
        self._documents = 0
        self._frequency: Counter = Counter()
        # Evidence counters, for measurement and the docs: reason -> boundaries placed.
        self.fired: Counter = Counter()
        self.merges = 0

    @property
    def current_index(self) -> int:
        return self._current.index

    @property
    def current_start_key(self) -> str:
        return self._current.start_key

    def gap_threshold(self) -> float:
        """The pause (seconds) beyond which a prompt starts a new sitting in this session."""
        if len(self._pauses) < GAP_MIN_SAMPLES:
            return GAP_DEFAULT
        ordered = sorted(self._pauses)
        at = GAP_QUANTILE * (len(ordered) - 1)
        low = int(at)
        high = min(low + 1, len(ordered) - 1)
        quantile = ordered[low] + (ordered[high] - ordered[low]) * (at - low)
        return max(GAP_FLOOR, min(GAP_CEILING, GAP_FACTOR * quantile))

    def add(self, rec: Record, prompt: str | None = None,
            analysis: PromptAnalysis | None = None) -> list[Segment]:
        """Account one record; return the segments it changed (see `_open` for the order)."""
        if not self.session_id:
            self.session_id = rec.session_id
        key = rec.key or rec.uuid
        when = seconds(rec.timestamp)
        changed: list[Segment] = []

        compaction = compaction_score(rec)
        if compaction:
            self._flush_turn()
            changed = self._boundary(["compaction"], [compaction], key)
        elif is_clear(rec, prompt):
            self._flush_turn()
            changed = self._boundary(["clear"], [1.0], key)
        elif prompt is not None:
            changed = self._at_prompt(prompt, analysis, when, key)

        seg = self._current
        if not seg.start_key:
            seg.start_key = key
        # A boundary opened this segment at this record (segment 0 has no opening record).
        opener = seg.index > 0 and seg.message_count == 0
        seg.end_key = key
        seg.message_count += 1
        if opener:
            seg.opened_at = when
        if opener or rec.role in CONVERSATION_ROLES:
            seg.touch(when, rec.timestamp)
        side = rec.is_sidechain or bool(rec.agent_id)
        for block in rec.content:
            if block.kind == "tool_use" or block.kind == "server_tool_use":
                seg.tool_call_count += 1
        if not side:
            items = working_items(rec) if rec.role == "assistant" else ()
            if items:
                turn = self._turn
                for item in items:
                    turn.pop(item, None)
                    turn[item] = None
                while len(turn) > WS_TURN_CAP:
                    del turn[next(iter(turn))]
            if rec.role == "assistant" and rec.text and prompt is None:
                reply = rec.text[:REPLY_TERM_CHARS]
                seg.terms.add(textmeasures.tokens(reply))
                seg.replies_added += 1
        if prompt is not None:
            self._count_prompt(seg, prompt, analysis)
        if seg.keywords_due():
            seg.refresh_keywords(self._frequency, self._documents)
        if when is not None and not side and (
                prompt is not None or rec.role in ("assistant", "tool")
                or any(b.kind == "tool_result" for b in rec.content)):
            self._last_activity = when
        changed.append(seg.snapshot(self.session_id))
        return changed

    def _at_prompt(self, prompt: str, analysis: PromptAnalysis | None, when: float | None,
                   key: str) -> list[Segment]:
        """Weigh the evidence for a boundary at a real prompt; open a segment if there is.

        Commands other than /clear never open a segment (`/model`, `/exit`, `/mcp` are
        housekeeping): a pause before one is carried to the next prompt instead."""
        reasons: list[str] = []
        scores: list[float] = []
        command = is_command(prompt, analysis)
        opens = can_open_topic(prompt, analysis)
        gap = 0.0
        if not is_interruption(prompt, analysis) and when is not None and (
                self._last_activity is not None):
            pause = when - self._last_activity
            if pause >= 0:
                threshold = self.gap_threshold()
                self._pauses.append(pause)
                if pause >= threshold:
                    gap = pause / (pause + threshold)
        if command:
            self._pending_gap = max(self._pending_gap, gap)
            self._flush_turn()
            return []
        gap, self._pending_gap = max(gap, self._pending_gap), 0.0
        if gap and opens:
            reasons.append("time_gap")
            scores.append(gap)
        score, _phrase = explicit_switch(prompt)
        if score:
            reasons.append("explicit_switch")
            scores.append(score)
        turn, working = self._turn, self._current.working
        if opens and len(turn) >= WS_MIN_RECENT and len(working) >= WS_MIN_SEGMENT:
            distance = jaccard_distance(turn, working)
            if distance >= WS_DISTANCE:
                size = min(1.0, min(len(turn), len(working)) / WS_FULL_EVIDENCE)
                novelty = 1.0 - textmeasures.cosine(textmeasures.term_vector(
                    clean(prompt)[:PROMPT_TERM_CHARS]), self._current.terms.counts)
                score = distance * size * novelty
                if score >= WS_MIN_SCORE:
                    reasons.append("working_set")
                    scores.append(score)
        self._flush_turn()
        if not reasons:
            return []
        return self._boundary(reasons, scores, key)

    def _flush_turn(self) -> None:
        """The work since the last prompt joins the segment it happened in."""
        self._current.remember(self._turn)
        self._turn = {}

    def _boundary(self, reasons: list[str], scores: list[float], key: str) -> list[Segment]:
        seg = self._current
        if seg.prompt_count == 0:
            # Nothing typed since the segment opened (a compaction followed by its summary,
            # a /clear followed by a prompt after a pause): one boundary, not an empty segment.
            if seg.index > 0:
                for reason, score in zip(reasons, scores, strict=True):
                    if reason not in seg.reasons:  # the summary after a compact_boundary
                        seg.reasons.append(reason)
                        seg.score = combine([seg.score, score])
            return []
        for reason in reasons:
            self.fired[reason] += 1
        return self._open(reasons, combine(scores), key)

    def _open(self, reasons: list[str], score: float, key: str) -> list[Segment]:
        """Close the open segment and open the next one.

        Returns, in the order the store must apply them: the closed segment (or, when it is
        merged, the merged one with `merged=True` followed by the one it was merged into),
        then the new segment. After a merge the new segment takes the merged one's index, so
        indices stay consecutive: a store that applies the list in order keeps them right.
        """
        closing = self._current
        changed: list[Segment] = []
        previous = self._previous
        if previous is not None and self._mergeable(closing, previous):
            changed.append(closing.snapshot(self.session_id, merged=True))
            self._count_terms(set(closing.terms.counts) - set(previous.terms.counts))
            previous.absorb(closing)
            others = self._frequency.copy()  # the session's other segments: all but this one
            others.subtract(set(previous.terms.counts))
            previous.refresh_keywords(+others, self._documents - 1)
            changed.append(previous.snapshot(self.session_id))
            self.merges += 1
            index = closing.index
        else:
            closing.refresh_keywords(self._frequency, self._documents)
            changed.append(closing.snapshot(self.session_id))
            self._count_terms(closing.terms.counts)
            self._documents += 1
            self._previous = closing
            index = closing.index + 1
        self._current = _State(index, reasons, score)
        self._current.start_key = key
        return changed

    def _count_terms(self, terms) -> None:
        frequency = self._frequency
        frequency.update(set(terms))
        if len(frequency) > 2 * DF_CAP:
            # most_common keeps first-seen order among ties: the same on every replay.
            self._frequency = Counter(dict(frequency.most_common(DF_CAP)))

    @staticmethod
    def _mergeable(closing: _State, previous: _State) -> bool:
        """A short segment started only by soft evidence that is either like the segment
        before it, or separated from it by nothing more than a weak pause."""
        if closing.prompt_count > MERGE_MAX_PROMPTS or not set(closing.reasons) <= SOFT_REASONS:
            return False
        if closing.reasons == ["time_gap"] and closing.score < WEAK_GAP_SCORE:
            return True
        return textmeasures.cosine(closing.terms.counts, previous.terms.counts) >= MERGE_SIMILARITY

    def _count_prompt(self, seg: _State, prompt: str, analysis: PromptAnalysis | None) -> None:
        seg.prompt_count += 1
        if analysis is not None:
            if seg.prompt_count == 1:
                seg.first_sim = analysis.similarity_previous
            else:
                seg.sim_sum += analysis.similarity_previous
                seg.sim_n += 1
        poor = is_command(prompt, analysis) or is_interruption(prompt, analysis)
        if not poor:
            body = clean(prompt)
            if not seg.title_final:
                seg.title, seg.title_final = title_of(body), True
            seg.terms.add(textmeasures.tokens(body[:PROMPT_TERM_CHARS]), 2)
            seg.prompts_added += 1
        elif not seg.title and is_command(prompt, analysis):
            seg.title = command_title(prompt)

    def state_sizes(self) -> dict[str, int]:
        """Sizes of every container the tracker holds (for tests of bounded memory)."""
        sizes = {"pauses": len(self._pauses), "turn": len(self._turn),
                 "frequency": len(self._frequency)}
        for name, seg in (("current", self._current), ("previous", self._previous)):
            if seg is None:
                continue
            sizes[f"{name}.terms"] = len(seg.terms.counts)
            sizes[f"{name}.working"] = len(seg.working)
            sizes[f"{name}.reasons"] = len(seg.reasons)
            sizes[f"{name}.keywords"] = len(seg.keywords)
        return sizes


__all__ = ["SegmentTracker", "TermBag", "combine", "seconds", "title_of", "working_items"]
