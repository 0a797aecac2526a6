"""A stored session as a person reads it: prompts, answers, one line per tool call, subagents
under the call that started them, compactions and branches marked.

`build(records, tool_calls)` turns a session's stored records (in store order, with their
reply links) and its tool calls into `Entry`s; `as_text`, `as_markdown` and `as_html` render
them. Everything here reads stored records only, whose text the parser already redacted.
Text from transcripts is escaped for each medium: control characters for the terminal
(`threadline.tables.printable`, applied by the CLI's stdout), HTML by `html.escape` on every
value (exported pages are opened in browsers, where a transcript's `<script>` must stay text).
"""

from __future__ import annotations

import html
import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime

from threadline.domain.links import TOOL_CONTINUATION, ThreadLink
from threadline.domain.records import Record
from threadline.domain.timestamps import parse_timestamp

# The tool input field that says what a call was about, by tool name; other tools show
# their first short string field.
_MAIN_ARGUMENT = {
    "Bash": "command", "Read": "file_path", "Write": "file_path", "Edit": "file_path",
    "MultiEdit": "file_path", "NotebookEdit": "notebook_path", "Grep": "pattern",
    "Glob": "pattern", "LS": "path", "Task": "description", "Agent": "description",
    "WebFetch": "url", "WebSearch": "query", "shell": "command", "exec_command": "cmd",
    "run_shell_command": "command", "read_file": "absolute_path", "write_file": "file_path",
    "replace": "file_path", "apply_patch": "input", "Skill": "skill", "SlashCommand": "command",
}
ARGUMENT_CHARS = 100


@dataclass(slots=True)
class ToolLine:
    """One tool call: its name, main argument, outcome and duration, and (for --full) its
    whole input and result."""

    name: str
    argument: str
    outcome: str  # "ok", "error", or "no result" while the call has none stored
    seconds: float | None
    input_text: str = ""
    result_text: str = ""
    agent_id: str = ""  # the subagent a Task/Agent call ran


@dataclass(slots=True)
class Entry:
    """One thing shown in order: a prompt, an answer (text and its tool calls), a thinking
    block, a compaction, a branch mark or a subagent's heading."""

    kind: str  # prompt, answer, thinking, compaction, branch, subagent, note
    depth: int  # 0 for the main conversation, 1 for a subagent's records, ...
    timestamp: str = ""
    role: str = ""
    model: str = ""
    text: str = ""
    # An answer's texts and tool calls in the order they were written.
    parts: list[str | ToolLine] = field(default_factory=list)

    @property
    def tools(self) -> list[ToolLine]:
        return [p for p in self.parts if isinstance(p, ToolLine)]


def main_argument(name: str, input_json: bytes | str) -> str:
    """The part of a tool's input a reader recognises the call by (`ls -la`, a path)."""
    try:
        data = json.loads(input_json or b"{}")
    except ValueError:
        return ""
    if not isinstance(data, dict):
        return ""
    value = data.get(_MAIN_ARGUMENT.get(name, ""))
    if value is None:
        value = next((v for v in data.values() if isinstance(v, str) and v.strip()), "")
    if isinstance(value, list):  # Codex shell: ["bash", "-lc", "ls"]
        value = " ".join(str(v) for v in value[2:] if v) if value[:2] == ["bash", "-lc"] \
            else " ".join(str(v) for v in value)
    text = " ".join(str(value).split())
    return text if len(text) <= ARGUMENT_CHARS else text[:ARGUMENT_CHARS - 1] + "…"


def _seconds_between(start: str, end: str) -> float | None:
    a, b = parse_timestamp(start or ""), parse_timestamp(end or "")
    return (b - a).total_seconds() if a and b and b >= a else None


def _tool_line(name: str, input_json: bytes, call: dict | None, result_text: str,
               agent_id: str) -> ToolLine:
    if call is None or not call.get("result_message_key"):
        outcome, seconds = "no result", None
    else:
        outcome = "error" if call.get("is_error") else "ok"
        seconds = _seconds_between(call.get("started_at", ""), call.get("finished_at", ""))
    try:
        pretty = json.dumps(json.loads(input_json or b"{}"), indent=2, ensure_ascii=False)
    except ValueError:
        pretty = bytes(input_json).decode("utf-8", "replace")
    return ToolLine(name=name or "?", argument=main_argument(name, input_json), outcome=outcome,
                    seconds=seconds, input_text=pretty, result_text=result_text,
                    agent_id=agent_id)


def build(records: Iterable[tuple[Record, ThreadLink]], tool_calls: Sequence[dict]
          ) -> list[Entry]:
    """The session's entries in reading order; each subagent's records follow, indented, the
    call that started it (the tool result naming its `agent_id`)."""
    pairs = list(records)
    calls = {c["tool_use_id"]: c for c in tool_calls}
    results: dict[str, str] = {}
    agent_of_call: dict[str, str] = {}
    for rec, _ in pairs:
        for block in rec.content:
            if block.kind == "tool_result" and block.tool_use_id:
                results.setdefault(block.tool_use_id, block.text)
                if block.agent_id:
                    agent_of_call[block.tool_use_id] = block.agent_id
    by_agent: dict[str, list[tuple[Record, ThreadLink]]] = {}
    main: list[tuple[Record, ThreadLink]] = []
    for rec, link in pairs:
        target = by_agent.setdefault(rec.agent_id, []) if rec.agent_id else main
        target.append((rec, link))
    out: list[Entry] = []
    shown_agents: set[str] = set()

    def emit(items: list[tuple[Record, ThreadLink]], depth: int) -> None:
        children: dict[str, int] = {}
        for rec, link in items:
            parent = link.parent_uuid
            if parent and link.relation != TOOL_CONTINUATION:
                children[parent] = children.get(parent, 0) + 1
                if children[parent] == 2:
                    out.append(Entry("branch", depth, rec.timestamp,
                                     text="a second reply to an earlier message: the "
                                          "conversation branched here"))
            for entry in _entries(rec, depth, calls, results, agent_of_call):
                last = out[-1] if out else None
                if (entry.kind == "answer" and last is not None and last.kind == "answer"
                        and last.depth == depth):
                    # One response streamed as several lines, or several calls in one turn:
                    # one answer, as the person saw it.
                    last.text = "\n\n".join(t for t in (last.text, entry.text) if t)
                    last.parts.extend(entry.parts)
                    last.model = last.model or entry.model
                else:
                    out.append(entry)
                for tool in entry.tools:
                    agent = tool.agent_id
                    if agent and agent in by_agent and agent not in shown_agents:
                        shown_agents.add(agent)
                        out.append(Entry("subagent", depth + 1,
                                         text=f"subagent {agent}"))
                        emit(by_agent[agent], depth + 1)

    emit(main, 0)
    for agent, items in by_agent.items():  # subagents no stored call names
        if agent not in shown_agents:
            out.append(Entry("subagent", 1, text=f"subagent {agent} (its call is not stored)"))
            emit(items, 1)
    return out


def _entries(rec: Record, depth: int, calls: dict[str, dict],
             results: dict[str, str], agent_of_call: dict[str, str]) -> list[Entry]:
    if rec.subtype in ("compact_boundary", "microcompact_boundary"):
        return [Entry("compaction", depth, rec.timestamp,
                      text="context compacted" if rec.subtype == "compact_boundary"
                      else "context micro-compacted")]
    if rec.subtype == "compact_summary":
        return [Entry("compaction", depth, rec.timestamp,
                      text="summary the compacted conversation continues from:\n" + rec.text)]
    if rec.role == "user" and not rec.is_meta:
        prompt = "\n\n".join(b.text for b in rec.content if b.kind == "text" and b.text)
        if not prompt and not rec.content:
            prompt = rec.text
        return [Entry("prompt", depth, rec.timestamp, "user", text=prompt)] \
            if prompt.strip() else []
    if rec.role != "assistant":
        return []
    out: list[Entry] = []
    answer = Entry("answer", depth, rec.timestamp, "assistant", rec.model)
    for block in rec.content:
        if block.kind == "thinking" and block.text.strip():
            out.append(Entry("thinking", depth, rec.timestamp, "assistant", rec.model,
                             text=block.text))
        elif block.kind == "text" and block.text.strip():
            answer.text = f"{answer.text}\n\n{block.text}" if answer.text else block.text
            answer.parts.append(block.text)
        elif block.kind in ("tool_use", "server_tool_use"):
            answer.parts.append(_tool_line(
                block.tool_name, block.tool_input_json, calls.get(block.tool_use_id),
                results.get(block.tool_use_id, ""), agent_of_call.get(block.tool_use_id, "")))
    if not rec.content and rec.text.strip():
        answer.text = rec.text
        answer.parts.append(rec.text)
    if answer.parts:
        out.append(answer)
    return out


# --- rendering -------------------------------------------------------------------------------

def _when(timestamp: str) -> str:
    moment = parse_timestamp(timestamp or "")
    return moment.astimezone().strftime("%Y-%m-%d %H:%M:%S") if moment else ""


def _duration(seconds: float | None) -> str:
    if seconds is None:
        return ""
    return f"{seconds * 1000:.0f} ms" if seconds < 1 else f"{seconds:.1f} s"


def _speaker(e: Entry) -> str:
    return "you" if e.kind == "prompt" else "assistant" + (f" ({e.model})" if e.model else "")


def tool_summary(tool: ToolLine) -> str:
    """`Bash  ls -la  → ok, 0.4 s`"""
    parts = [tool.outcome] + ([_duration(tool.seconds)] if tool.seconds is not None else [])
    argument = f"  {tool.argument}" if tool.argument else ""
    return f"{tool.name}{argument}  → {', '.join(parts)}"


def _indent(text: str, prefix: str) -> str:
    return "\n".join(prefix + line if line else prefix.rstrip() for line in text.splitlines())


def as_text(entries: Sequence[Entry], full: bool = False, thinking: bool = False) -> str:
    """The conversation for a terminal: a heading line per prompt and answer, a line per tool
    call (`--full`: its input and result below it), thinking shown when asked."""
    lines: list[str] = []
    for e in entries:
        pad = "    " * e.depth
        if e.kind in ("prompt", "answer"):
            who = _speaker(e)
            lines.append(f"{pad}── {who} · {_when(e.timestamp)}")
            for part in e.parts or [e.text]:
                if isinstance(part, str):
                    lines.append(_indent(part, pad))
                    continue
                lines.append(f"{pad}  ⏺ {tool_summary(part)}")
                if full:
                    lines.append(_indent(part.input_text, pad + "      "))
                    if part.result_text:
                        lines.append(_indent(part.result_text, pad + "      │ "))
            lines.append("")
        elif e.kind == "thinking":
            if thinking or full:
                lines.extend([f"{pad}── thinking", _indent(e.text, pad + "  ∴ "), ""])
            else:
                lines.extend([f"{pad}  ∴ thinking ({len(e.text.split())} words; --full shows it)"])
        elif e.kind == "compaction":
            lines.extend([f"{pad}══ {e.text.splitlines()[0]} · {_when(e.timestamp)}"] +
                         ([_indent("\n".join(e.text.splitlines()[1:]), pad + "   ")]
                          if full and len(e.text.splitlines()) > 1 else []) + [""])
        elif e.kind == "branch":
            lines.extend([f"{pad}⑂ {e.text}", ""])
        elif e.kind == "subagent":
            lines.extend([f"{pad}┌ {e.text}"])
    return "\n".join(lines).rstrip() + "\n"


def _fence(text: str) -> str:
    ticks = "```"
    while ticks in text:
        ticks += "`"
    return f"{ticks}\n{text}\n{ticks}"


def as_markdown(entries: Sequence[Entry], title: str, session_id: str) -> str:
    """The conversation as Markdown. Transcript text is shown as written (it is Markdown
    itself, as a rule); tool inputs and results go in fenced blocks."""
    out = [f"# {title or session_id}", "", f"Session `{session_id}`", ""]
    for e in entries:
        quote = "> " * e.depth
        if e.kind in ("prompt", "answer"):
            who = _speaker(e).capitalize()
            out += [f"{quote}**{who}** · {_when(e.timestamp)}", quote]
            for part in e.parts or [e.text]:
                if isinstance(part, str):
                    out += [_indent(part, quote), quote]
                else:
                    out += [f"{quote}- `{tool_summary(part).replace('`', '')}`", quote]
            out.append("")
        elif e.kind == "thinking":
            out += [f"{quote}<details><summary>thinking</summary>", quote,
                    _indent(html.escape(e.text), quote), quote, f"{quote}</details>", ""]
        elif e.kind == "compaction":
            out += [f"{quote}---", f"{quote}*{html.escape(e.text.splitlines()[0])}*", ""]
        elif e.kind == "branch":
            out += [f"{quote}*⑂ {e.text}*", ""]
        elif e.kind == "subagent":
            out += [f"{quote}### {e.text}", ""]
    return "\n".join(out).rstrip() + "\n"


_STYLE = """
body{font:15px/1.5 system-ui,sans-serif;max-width:60rem;margin:2rem auto;padding:0 1rem;
color:#1d1d1f}
.entry{margin:.8rem 0;padding:.6rem .9rem;border-radius:8px;white-space:pre-wrap;
overflow-wrap:anywhere}
.prompt{background:#eef4ff}.answer{background:#f6f6f6}.thinking{color:#666;font-style:italic}
p{margin:.3rem 0}.meta{font-size:12px;color:#666;white-space:normal}
.sub{margin-left:2rem;border-left:3px solid #ccd;
padding-left:.8rem}.mark{color:#8a5a00;font-weight:600}
details{margin:.2rem 0;white-space:normal}summary{font-family:ui-monospace,monospace;font-size:13px;
cursor:pointer}pre{background:#fff;border:1px solid #ddd;padding:.5rem;overflow:auto;
white-space:pre-wrap}.error summary{color:#b00020}
"""


def as_html(entries: Sequence[Entry], title: str, session_id: str) -> str:
    """One self-contained HTML page (no script, no external resource). Every value from the
    transcript passes through `html.escape`, so its text can never become markup."""
    e_ = html.escape
    body: list[str] = []
    depth = 0
    for e in entries:
        while depth < e.depth:
            body.append('<div class="sub">')
            depth += 1
        while depth > e.depth:
            body.append("</div>")
            depth -= 1
        if e.kind in ("prompt", "answer"):
            who = _speaker(e).capitalize()
            parts = "".join(
                f"<p>{e_(t)}</p>" if isinstance(t, str) else
                f'<details class="{"error" if t.outcome == "error" else "tool"}"><summary>'
                f"{e_(tool_summary(t))}</summary><pre>{e_(t.input_text)}</pre>"
                + (f"<pre>{e_(t.result_text)}</pre>" if t.result_text else "") + "</details>"
                for t in e.parts or [e.text])
            body.append(f'<div class="entry {e.kind}"><div class="meta">{e_(who)} · '
                        f"{e_(_when(e.timestamp))}</div>{parts}</div>")
        elif e.kind == "thinking":
            body.append(f'<details class="entry thinking"><summary>thinking</summary>'
                        f"{e_(e.text)}</details>")
        elif e.kind in ("compaction", "branch", "subagent"):
            head, _, rest = e.text.partition("\n")
            more = f"<details><summary>summary</summary>{e_(rest)}</details>" if rest else ""
            body.append(f'<div class="mark">{e_(head)}{more}</div>')
    body.extend("</div>" for _ in range(depth))
    name = e_(title or session_id)
    return ("<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
            "<meta http-equiv=\"Content-Security-Policy\" content=\"default-src 'none'; "
            "style-src 'unsafe-inline'\">"
            f"<meta name=\"viewport\" content=\"width=device-width\"><title>{name}</title>"
            f"<style>{_STYLE}</style></head><body><h1>{name}</h1>"
            f'<p class="meta">session {e_(session_id)} · exported '
            f"{e_(datetime.now().astimezone().strftime('%Y-%m-%d %H:%M'))}</p>"
            + "\n".join(body) + "</body></html>\n")
