"""An independent count of the tokens billed per day, read straight from the transcript files.

    python -m evaluation.recount [--corpus PATH] [--json]

It follows the rule docs/accounting.md states ("What is counted") and shares no code with
threadline: it reads the JSONL (and Gemini JSON) files itself, with the standard library,
never through threadline's parser, store or accounting, so a slip in either shows as a
day whose figures differ. `make eval` prints its per-day totals (UTC dates) beside
threadline's (`compare`); alone, this module imports the corpus with `threadline import` to
compare.

The rule, as implemented here (see the doc for why):

- Every record is read once: a line whose `uuid` an earlier line already holds (files in
  sorted order, folders before their files' siblings as `os.walk` gives them sorted) is a copy
  (`--resume` replays history under the original uuids) and is skipped. The skipped lines that
  carried a response not counted elsewhere are listed (`shadowed`): in real transcripts uuids
  are random, so only a hand-made file can hit this.
- Claude Code: assistant lines with `message.usage`, and subagent responses copied into
  `progress`/`agent_progress` lines. `<synthetic>` lines and lines with all four figures zero
  are not responses. With a `requestId`: one response per `message.id`. Without one: per
  file, session, id, sidechain flag (and subagent, for copies) the lines in file order; a
  line joins the response of the line before it when its output count is not lower and
  that line either had a `stop_reason` and the same four figures, or had none and 0 output
  tokens (a gateway's early line), or had none and the same input, cache write and cache
  read; any other line starts a new response. Then the copies elsewhere (same session, id,
  final figures, n-th such response of its file) are one. No `message.id`: one response per
  line. The line that
  counts: own line before an agent_progress copy, main chain before sidechain, a
  `stop_reason` before none, more output before less, the later line last.
- Codex: `event_msg`/`token_count` with `info.last_token_usage` (or `usage` when `info` is
  absent); input net of cached input, cached input as cache reads; a count equal to the
  session's previous one with no `response_item` in between is a re-emit.
- Gemini CLI: `tokens` of each message, the last version of a message id per session; input
  net of cached when `total` shows cached is inside input, plus `tool`; output plus thoughts.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
from collections import defaultdict
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

KINDS = ("input", "output", "cache write", "cache read")
NO_DATE = "(no timestamp)"
CODEX_TYPES = {"session_meta", "response_item", "event_msg", "turn_context", "compacted"}


@dataclass
class Line:
    """A Claude Code line (or agent_progress copy) that reports usage."""

    order: int  # position in the walk over the corpus: later lines win ties
    path: str
    number: int
    session: str
    message_id: str
    request_id: str
    sidechain: bool
    stop: bool
    figures: tuple[int, int, int, int]
    timestamp: str
    copy: bool = False  # read from an agent_progress line
    agent: str = ""


def _int(value: object) -> int:
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    return value if isinstance(value, int) and not isinstance(value, bool) else 0


def _str(value: object) -> str:
    return value if isinstance(value, str) else ""


def day_of(timestamp: str) -> str:
    """The UTC date of an ISO-8601 timestamp (UTC when it names no zone)."""
    text = timestamp.strip().replace("Z", "+00:00").replace("z", "+00:00")
    head, dot, rest = text.partition(".")
    if dot:  # fromisoformat wants at most 6 fractional digits
        digits = len(rest) - len(rest.lstrip("0123456789"))
        text = f"{head}.{rest[:digits][:6].ljust(6, '0')}{rest[digits:]}"
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        return NO_DATE
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    try:
        return moment.astimezone(UTC).date().isoformat()
    except OverflowError:
        return NO_DATE


def files(corpus: Path) -> list[Path]:
    """Transcript files in the order `os.walk` gives them with sorted names."""
    out = []
    for folder, dirs, names in os.walk(corpus):
        dirs.sort()
        for name in sorted(names):
            path = Path(folder, name)
            if path.is_symlink():
                continue
            if name.endswith(".jsonl") or (name.startswith("session-") and name.endswith(".json")
                                           and Path(folder).name == "chats"):
                out.append(path)
    return out


# --- Claude Code ---------------------------------------------------------------------------

def _claude_line(obj: dict, order: int, path: str, number: int) -> Line | None:
    copy = False
    agent = ""
    envelope = obj
    message = obj.get("message")
    if obj.get("type") == "progress":
        data = obj.get("data") if isinstance(obj.get("data"), dict) else {}
        envelope = data.get("message") if isinstance(data.get("message"), dict) else {}
        message = envelope.get("message")
        copy, agent = True, _str(data.get("agentId")) or _str(envelope.get("agentId"))
    elif obj.get("type") != "assistant":
        return None
    if not isinstance(message, dict) or not isinstance(message.get("usage"), dict):
        return None
    if message.get("model") == "<synthetic>":
        return None
    usage = message["usage"]
    figures = (_int(usage.get("input_tokens")), _int(usage.get("output_tokens")),
               _int(usage.get("cache_creation_input_tokens")),
               _int(usage.get("cache_read_input_tokens")))
    if not any(figures):
        return None
    timestamp = _str(envelope.get("timestamp")) or _str(obj.get("timestamp"))
    return Line(order, path, number, _str(obj.get("sessionId")), _str(message.get("id")),
                _str(envelope.get("requestId")), envelope.get("isSidechain") is True,
                bool(message.get("stop_reason")), figures, timestamp, copy, agent)


def _best(lines: list[Line]) -> Line:
    return max(lines, key=lambda x: (not x.copy, not x.sidechain, x.stop, x.figures[1],
                                     x.order))


def _split(lines: list[Line]) -> list[list[Line]]:
    """Lines of one file, session and id without requestId -> the responses they report."""
    out: list[list[Line]] = []
    for line in lines:
        if out:
            before = out[-1][-1]
            if before.stop:
                same = line.figures == before.figures
            else:
                prompt = [f for i, f in enumerate(line.figures) if i != 1]
                same = before.figures[1] == 0 or prompt == [
                    f for i, f in enumerate(before.figures) if i != 1]
            if same and line.figures[1] >= before.figures[1]:
                out[-1].append(line)
                continue
        out.append([line])
    return out


def claude_responses(lines: list[Line]) -> list[Line]:
    """The line that counts for each response."""
    by_id: dict[str, list[Line]] = defaultdict(list)
    streams: dict[tuple, list[Line]] = defaultdict(list)
    out: list[Line] = []
    for line in lines:
        if not line.message_id:
            out.append(line)
        elif line.request_id:
            by_id[line.message_id].append(line)
        else:
            streams[(line.path, line.session, line.message_id, line.sidechain, line.copy,
                      line.agent)].append(line)
    out.extend(_best(group) for group in by_id.values())
    copies: dict[tuple, list[Line]] = defaultdict(list)
    for stream in streams.values():
        seen: dict[tuple, int] = defaultdict(int)
        for response in _split(sorted(stream, key=lambda x: x.order)):
            final = _best(response)
            copies[(final.session, final.message_id, final.figures,
                    seen[final.figures])].append(final)
            seen[final.figures] += 1
    out.extend(_best(group) for group in copies.values())
    return out


# --- Codex and Gemini ----------------------------------------------------------------------

class _Codex:
    def __init__(self) -> None:
        self.session = ""
        self.last: dict[str, tuple | None] = {}

    def line(self, obj: dict) -> tuple[str, tuple[int, int, int, int]] | None:
        payload = obj.get("payload") if isinstance(obj.get("payload"), dict) else {}
        kind = obj.get("type")
        if kind == "session_meta" and _str(payload.get("id")):
            self.session = payload["id"]
        if kind == "response_item":
            self.last[self.session] = None
        if kind != "event_msg" or payload.get("type") != "token_count":
            return None
        info = payload.get("info")
        usage = info.get("last_token_usage") if isinstance(info, dict) else (
            payload.get("usage") if "info" not in payload else None)
        if not isinstance(usage, dict):
            return None
        given = _first(usage, ("input_tokens", "prompt_tokens", "input"))
        cached = _first(usage, ("cached_input_tokens", "cache_read_input_tokens",
                                "cached_tokens"))
        details = usage.get("prompt_tokens_details")
        if not cached and isinstance(details, dict):
            cached = _int(details.get("cached_tokens"))
        cached = min(max(cached, 0), given)
        output = _first(usage, ("output_tokens", "completion_tokens", "output"))
        reasoning = _first(usage, ("reasoning_output_tokens", "reasoning_tokens"))
        figures = (given - cached, output, 0, cached)
        if not any(figures) or self.last.get(self.session) == (*figures, reasoning):
            return None
        self.last[self.session] = (*figures, reasoning)
        return _str(obj.get("timestamp")), figures


def _first(fields: dict, names: tuple[str, ...]) -> int:
    """The first of `names` the object has (writers differ in what they call a count)."""
    return next((max(0, _int(fields[name])) for name in names if name in fields), 0)


def gemini_figures(tokens: dict) -> tuple[int, int, int, int]:
    given = _first(tokens, ("input", "prompt", "input_tokens", "prompt_tokens"))
    output = _first(tokens, ("output", "candidates", "output_tokens", "candidates_tokens"))
    cached = _first(tokens, ("cached", "cached_tokens"))
    thoughts = _first(tokens, ("thoughts", "reasoning", "thoughts_tokens", "reasoning_tokens"))
    tool = _first(tokens, ("tool", "tool_tokens"))
    inclusive = given + output + thoughts + tool
    total = next((_int(tokens[n]) for n in ("total", "total_tokens") if n in tokens), None)
    fresh = given
    if cached and total == inclusive and total != inclusive + cached:
        fresh = given - min(given, cached)
    return fresh + tool, output + thoughts, 0, cached


def _gemini_message(obj: dict, session: str, found: dict) -> None:
    if isinstance(obj.get("tokens"), dict) and "id" in obj:
        found[(session, _str(obj.get("id")))] = (_str(obj.get("timestamp")),
                                                 gemini_figures(obj["tokens"]))


# --- the count -----------------------------------------------------------------------------

@dataclass
class Count:
    days: dict[str, list[int]]
    shadowed: list[str]  # path:line of uuid-shadowed responses


def count(corpus: Path) -> Count:
    """Per UTC day, the (input, output, cache write, cache read) tokens billed."""
    uuids: set[str] = set()
    claude: list[Line] = []
    shadowed: list[Line] = []
    others: list[tuple[str, tuple[int, int, int, int]]] = []
    gemini: dict[tuple, tuple] = {}
    order = 0
    for path in files(corpus):
        if path.suffix == ".json":
            try:
                doc = json.loads(path.read_bytes())
            except ValueError:
                continue
            if isinstance(doc, dict) and isinstance(doc.get("messages"), list):
                for message in doc["messages"]:
                    if isinstance(message, dict):
                        _gemini_message(message, _str(doc.get("sessionId")), gemini)
            continue
        codex = _Codex()
        gemini_session = ""
        with path.open("rb") as handle:
            for number, raw in enumerate(handle, start=1):
                try:
                    obj = json.loads(raw)
                except ValueError:
                    continue
                if not isinstance(obj, dict):
                    continue
                order += 1
                if "payload" in obj and obj.get("type") in CODEX_TYPES:
                    if (found := codex.line(obj)) is not None:
                        others.append(found)
                    continue
                if obj.get("type") == "gemini" or "projectHash" in obj or "$set" in obj:
                    if isinstance(obj.get("$set"), dict):
                        obj = obj["$set"]
                    gemini_session = _str(obj.get("sessionId")) or gemini_session
                    _gemini_message(obj, gemini_session, gemini)
                    # A whole legacy chat written as one line.
                    for message in obj.get("messages") or ():
                        if isinstance(message, dict):
                            _gemini_message(message, gemini_session, gemini)
                    continue
                line = _claude_line(obj, order, str(path), number)
                uuid = _str(obj.get("uuid"))
                if uuid and uuid in uuids:
                    if line is not None:
                        shadowed.append(line)
                    continue
                uuids.add(uuid)
                if line is not None:
                    claude.append(line)
    days: dict[str, list[int]] = defaultdict(lambda: [0, 0, 0, 0])
    counted = claude_responses(claude)
    for timestamp, figures in [*((r.timestamp, r.figures) for r in counted), *others,
                               *gemini.values()]:
        day = days[day_of(timestamp)]
        for i, n in enumerate(figures):
            day[i] += n
    ids = {r.message_id for r in counted}
    return Count(dict(sorted(days.items())),
                 [f"{s.path}:{s.number}" for s in shadowed if s.message_id not in ids])


def compare(ours: dict[str, list[int]], theirs: dict[str, list[int]]) -> list[dict]:
    """One row per day of either: both figures and whether they match."""
    return [{"day": day, "threadline": ours.get(day), "recount": theirs.get(day),
             "match": ours.get(day) == theirs.get(day)}
            for day in sorted(set(ours) | set(theirs))]


def threadline_days(db: Path) -> dict[str, list[int]]:
    """threadline's per-day totals (UTC) of an imported database, every agent."""
    from threadline.storage import accounting
    from threadline.storage.readonly import open_readonly
    from threadline.storage.usage import usage

    query = accounting.usage_query("day", timezone_name="UTC")
    with open_readonly(db).connect() as conn:
        found = usage(conn, query)
    return {r["period"]: [r["input_tokens"], r["output_tokens"], r["cache_creation_tokens"],
                          r["cache_read_tokens"]] for r in found.rows}


def print_comparison(rows: list[dict], recount: Count) -> None:
    matched = sum(r["match"] for r in rows)
    print(f"  tokens per day (UTC; input, output, cache write, cache read): threadline beside "
          f"an independent recount (evaluation/recount.py): {matched} of {len(rows)} days match")
    for r in rows:
        ours = r["threadline"] if r["threadline"] is not None else "(none)"
        theirs = r["recount"] if r["recount"] is not None else "(none)"
        mark = "=" if r["match"] else "DIFFERS"
        print(f"    {r['day']:14} threadline {ours!s:42} recount {theirs!s:42} {mark}")
    totals = [[sum((r[k] or [0, 0, 0, 0])[i] for r in rows) for i in range(4)]
              for k in ("threadline", "recount")]
    print(f"    {'total':14} threadline {totals[0]!s:42} recount {totals[1]!s:42}")
    for where in recount.shadowed:
        print(f"    not counted by either: a response whose uuid an earlier record holds: {where}")


def main() -> int:
    from evaluation.corpus import DEFAULT_CORPUS, import_folder

    parser = argparse.ArgumentParser(prog="python -m evaluation.recount")
    parser.add_argument("--corpus", type=Path, default=DEFAULT_CORPUS)
    parser.add_argument("--json", action="store_true", help="one JSON object instead of text")
    args = parser.parse_args()
    corpus = args.corpus.resolve()
    if not corpus.is_dir():
        print(f"evaluation.recount: no transcript folder at {args.corpus}", file=sys.stderr)
        return 2
    recount = count(corpus)
    with tempfile.TemporaryDirectory(prefix="threadline-recount-") as tmp:
        db = Path(tmp) / "recount.db"
        import_folder(corpus, db)
        rows = compare(threadline_days(db), recount.days)
    if args.json:
        print(json.dumps({"corpus": str(corpus), "days": rows, "shadowed": recount.shadowed}))
    else:
        print(f"corpus {corpus}")
        print_comparison(rows, recount)
    return int(not all(r["match"] for r in rows))


if __name__ == "__main__":
    raise SystemExit(main())
