"""Token accounting against an independent recount (evaluation/recount.py) and ccusage's known
departures (evaluation/ccusage.py): transcripts written here, read directly by the recount and
imported through the real pipeline into a real SQLite database for threadline's figures."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from evaluation import ccusage, recount
from threadline.domain.billing import Response
from threadline.storage.readonly import open_readonly
from threadline.storage.tools import tool_facts

S1, S2 = "11111111-0000-4000-8000-000000000001", "22222222-0000-4000-8000-000000000002"
CODEX_SESSION = "0199c0de-0000-7000-8000-000000000003"

# Per UTC day: (input, output, cache write, cache read), worked out by hand from the lines
# `write_corpus` writes (see the comments there).
EXPECTED = {
    "2025-06-01": [4 + 1200 + 1300 + 10 + 700 + 900, 300 + 80 + 40 + 5 + 30 + 20, 300,
                   9000 + 3000 + 4000 + 100 + 200],
    "2025-06-02": [10 + 600 + 600, 5 + 50 + 50, 500, 400 + 400],
    "2025-06-03": [20 + 200, 10 + 50, 0, 1000 + 100],
}
SUBAGENT_TOKENS = (700 + 30 + 100) + (900 + 20 + 200)


class Claude:
    """Claude Code lines of one file, each parented to the previous one."""

    def __init__(self, session: str, agent: str = ""):
        self.session, self.agent = session, agent
        self.lines: list[dict] = []

    def add(self, kind: str, second: int, message: dict, day: str = "2025-06-01",
            **extra) -> dict:
        fields = {"parentUuid": self.lines[-1]["uuid"] if self.lines else None,
                  "isSidechain": bool(self.agent), "userType": "external", "cwd": "/home/u/app",
                  "sessionId": self.session, "version": "2.1.38", "type": kind,
                  "message": message,
                  "uuid": f"{self.session[:8]}-{self.agent or 'main'}-{len(self.lines):04d}",
                  "timestamp": f"{day}T10:00:{second:02d}.000Z", **extra}
        if self.agent:
            fields["agentId"] = self.agent
        self.lines.append(fields)
        return fields

    def reply(self, second: int, message_id: str, usage: tuple, stop: str | None = None,
              request_id: str = "", model: str = "claude-sonnet-4-5-20250929",
              content: list | None = None, day: str = "2025-06-01", **usage_extra) -> dict:
        tokens = dict(zip(("input_tokens", "output_tokens", "cache_creation_input_tokens",
                           "cache_read_input_tokens"), usage, strict=True), **usage_extra)
        extra = {"requestId": request_id} if request_id else {}
        return self.add("assistant", second, {
            "id": message_id, "type": "message", "role": "assistant", "model": model,
            "content": content or [{"type": "text", "text": "ok"}], "stop_reason": stop,
            "usage": tokens}, day=day, **extra)

    def gateway(self, second: int, usage: tuple, stop: str | None = None) -> dict:
        """A gateway that answers every call with the id "ocgo" and writes no requestId."""
        return self.reply(second, "ocgo", usage, stop, model="MiniMax-M2.1")

    def write(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text("".join(json.dumps(x, separators=(",", ":")) + "\n"
                                for x in self.lines))


def progress(parent: Claude, second: int, copied: dict) -> None:
    """The parent's agent_progress line that embeds a subagent line."""
    parent.add("progress", second, None, data={
        "type": "agent_progress", "agentId": copied["agentId"], "prompt": "",
        "message": {k: copied[k] for k in ("type", "message", "uuid", "timestamp",
                                           "isSidechain", "agentId")}},
        parentToolUseID="toolu_task", toolUseID="agent_msg_1")


def write_corpus(root: Path) -> Path:
    projects = root / "projects"
    main = Claude(S1)
    main.add("user", 0, {"role": "user", "content": "look into the parser"})
    # An Anthropic stream: output 1, 1, 300; the same prompt figures on every line.
    for second, out in ((1, 1), (2, 1), (3, 300)):
        main.reply(second, "msg_A", (4, out, 300, 9000), "end_turn" if out == 300 else None,
                   request_id="req_A")
    # A gateway answering two calls with one id: early lines 0 output and an estimate.
    main.gateway(4, (900, 0, 0, 0))
    main.gateway(5, (900, 0, 0, 0))
    main.gateway(6, (1200, 80, 0, 3000), "tool_use")
    main.gateway(7, (950, 0, 0, 0))
    main.gateway(8, (1300, 40, 0, 4000), "end_turn")
    # A Task call whose subagent runs behind the gateway too (same id), copied into
    # agent_progress lines of this file as it runs.
    main.reply(9, "msg_T", (10, 5, 0, 0), "tool_use", request_id="req_T", content=[
        {"type": "tool_use", "id": "toolu_task", "name": "Task",
         "input": {"description": "explore", "prompt": "look", "subagent_type": "Explore"}}])
    agent = Claude(S1, agent="gw1")
    agent.add("user", 10, {"role": "user", "content": "look"})
    for second, usage, stop in ((11, (500, 0, 0, 0), None), (12, (700, 30, 0, 100), "tool_use"),
                                (13, (800, 0, 0, 0), None), (14, (900, 20, 0, 200), "end_turn")):
        progress(main, second, agent.gateway(second, usage, stop))
    main.add("user", 15, {"role": "user", "content": [
        {"type": "tool_result", "tool_use_id": "toolu_task", "content": "found"}]},
        toolUseResult={"status": "completed", "agentId": "gw1", "content": []})
    # Written locally for an API error: no call.
    main.reply(16, "6b3e174b-339c", (0, 0, 0, 0), model="<synthetic>")
    # Cache writes split 5m/1h as 0/0 beside 500 written tokens: billed all the same.
    main.reply(17, "msg_C", (10, 5, 500, 0), "end_turn", request_id="req_C", day="2025-06-02",
               cache_creation={"ephemeral_5m_input_tokens": 0, "ephemeral_1h_input_tokens": 0})
    main.write(projects / "-home-u-app" / f"{S1}.jsonl")
    agent.write(projects / "-home-u-app" / S1 / "subagents" / "agent-gw1.jsonl")

    # A resumed session replays msg_A's final line under its original uuid, then goes on.
    resumed = Claude(S2)
    resumed.lines.append(dict(main.lines[3]))
    resumed.reply(1, "msg_B", (20, 10, 0, 1000), "end_turn", request_id="req_B",
                  day="2025-06-03")
    resumed.write(projects / "-home-u-app" / f"{S2}.jsonl")

    def codex(second: int, kind: str, payload: dict) -> dict:
        return {"timestamp": f"2025-06-02T11:00:{second:02d}.000Z", "type": kind,
                "payload": payload}

    count = {"type": "token_count", "info": {"last_token_usage": {
        "input_tokens": 1000, "cached_input_tokens": 400, "output_tokens": 50,
        "reasoning_output_tokens": 10, "total_tokens": 1050}}}
    rollout = [codex(0, "session_meta", {"id": CODEX_SESSION, "cwd": "/home/u/app"}),
               codex(1, "turn_context", {"model": "gpt-5-codex"}),
               codex(2, "response_item", {"type": "message", "role": "assistant",
                                          "content": [{"type": "output_text", "text": "hi"}]}),
               codex(3, "event_msg", count),
               codex(4, "event_msg", count),  # re-emitted: the same call
               codex(5, "response_item", {"type": "message", "role": "assistant",
                                          "content": [{"type": "output_text", "text": "so"}]}),
               codex(6, "event_msg", count)]  # new output since: another call
    path = projects / "codex" / f"rollout-2025-06-02T11-00-00-{CODEX_SESSION}.jsonl"
    path.parent.mkdir(parents=True)
    path.write_text("".join(json.dumps(x) + "\n" for x in rollout))

    chat = {"sessionId": "gem-1", "projectHash": "abc", "startTime": "2025-06-03T09:00:00Z",
            "lastUpdated": "2025-06-03T09:01:00Z", "messages": [
                {"id": "m1", "type": "user", "timestamp": "2025-06-03T09:00:00Z",
                 "content": "hello"},
                {"id": "m2", "type": "gemini", "timestamp": "2025-06-03T09:00:05Z",
                 "content": "hi", "model": "gemini-2.5-pro",
                 "tokens": {"input": 300, "output": 40, "cached": 100, "thoughts": 10,
                            "tool": 0, "total": 350}}]}
    path = projects / "gemini" / ".gemini" / "tmp" / "abc" / "chats" / \
        "session-2025-06-03T09-00-gem00001.json"
    path.parent.mkdir(parents=True)
    path.write_text(json.dumps(chat, indent=2))
    return projects


@pytest.fixture(scope="module")
def written(tmp_path_factory) -> tuple[Path, Path]:
    """The files `write_corpus` writes, and a database they were imported into."""
    root = write_corpus(tmp_path_factory.mktemp("recount"))
    db = root.parent / "t.db"
    subprocess.run([sys.executable, "-m", "cli", "import", "--db", str(db), "--json",
                    str(root)], check=True, capture_output=True, timeout=300)
    return root, db


def test_the_recount_reads_the_rule_from_the_files(written):
    root, _ = written
    counted = recount.count(root)
    assert counted.days == EXPECTED
    assert counted.shadowed == [], "the resume copy carries a response counted elsewhere"


def test_threadline_counts_every_day_as_the_recount_does(written, capsys):
    root, db = written
    days = recount.compare(recount.threadline_days(db), recount.count(root).days)
    assert [d["day"] for d in days] == sorted(EXPECTED)
    assert all(d["match"] for d in days), days
    recount.print_comparison(days, recount.count(root))
    assert "3 of 3 days match" in capsys.readouterr().out


def test_the_tool_report_counts_a_gateway_subagent_by_the_same_rule(written):
    _, db = written
    with open_readonly(db).connect() as conn:
        task = next(f for f in tool_facts(conn) if f.name == "Task")
    assert task.agent_id == "gw1"
    assert task.subagent_tokens == SUBAGENT_TOKENS


def test_every_day_of_the_real_corpus_matches_the_recount(corpus, tmp_path):
    db = tmp_path / "corpus.db"
    subprocess.run([sys.executable, "-m", "cli", "import", "--db", str(db), "--json",
                    str(corpus)], check=True, capture_output=True, timeout=600)
    days = recount.compare(recount.threadline_days(db), recount.count(corpus).days)
    assert len(days) > 10
    assert [d for d in days if not d["match"]] == []


def test_a_day_that_differs_is_shown(capsys):
    days = recount.compare({"2025-01-01": [1, 2, 3, 4], "2025-01-02": [1, 1, 1, 1]},
                           {"2025-01-01": [1, 2, 3, 4], "2025-01-03": [5, 5, 5, 5]})
    assert [(d["day"], d["match"]) for d in days] == [
        ("2025-01-01", True), ("2025-01-02", False), ("2025-01-03", False)]
    recount.print_comparison(days, recount.Count({}, ["/x.jsonl:5"]))
    out = capsys.readouterr().out
    assert "1 of 3 days match" in out and out.count("DIFFERS") == 2 and "/x.jsonl:5" in out


def test_the_rule_lives_in_a_module_free_of_sql_and_grpc():
    loaded = subprocess.run(
        [sys.executable, "-c", "import sys, threadline.domain.billing; "
         "print(sorted({m.split('.')[0] "
         "for m in sys.modules} & {'grpc', 'sqlalchemy', 'sqlite3', 'services'}))"],
        capture_output=True, text=True, check=True, timeout=60).stdout
    assert loaded.strip() == "[]"


# --- ccusage's departures, as the comparison explains them ------------------------------------

def test_ccusage_drops_cache_writes_split_0_0():
    usage = {"input_tokens": 10, "output_tokens": 5, "cache_creation_input_tokens": 500,
             "cache_read_input_tokens": 7}
    assert ccusage.ccusage_figures(usage) == [10, 5, 500, 7]
    split = dict(usage, cache_creation={"ephemeral_5m_input_tokens": 0,
                                        "ephemeral_1h_input_tokens": 0})
    assert ccusage.ccusage_figures(split) == [10, 5, 0, 7]


def test_ccusage_counts_requestless_lines_per_timestamp_or_per_id():
    def line(timestamp: str, message_id: str, figures: list[int]) -> dict:
        return {"message_id": message_id, "session": "s1", "timestamp": timestamp,
                "figures": figures, "raw": b'"usage":{'}

    stream = [line("2025-01-01T00:00:01.000Z", "ocgo", [900, 0, 0, 0]),
              line("2025-01-01T00:00:02.000Z", "ocgo", [1200, 80, 0, 3000]),
              line("2025-01-01T00:00:05.000Z", "ocgo", [1300, 40, 0, 4000])]
    assert ccusage.ccusage_requestless(stream, "daily") == [3400, 120, 0, 7000]
    assert ccusage.ccusage_requestless(stream, "session") == [1300, 40, 0, 4000]


def test_the_comparison_names_both_departures(tmp_path):
    """A day where threadline and ccusage differ only by these two departures is explained
    exactly by them."""
    lines = [
        {"type": "assistant", "sessionId": "s1", "requestId": "req_1",
         "timestamp": "2025-01-01T00:00:00.000Z",
         "message": {"id": "msg_1", "usage": {
             "input_tokens": 10, "output_tokens": 5, "cache_creation_input_tokens": 500,
             "cache_read_input_tokens": 0, "cache_creation": {
                 "ephemeral_5m_input_tokens": 0, "ephemeral_1h_input_tokens": 0}}}},
        *({"type": "assistant", "sessionId": "s1", "timestamp": f"2025-01-01T00:00:0{n}.000Z",
           "message": {"id": "ocgo", "stop_reason": stop, "usage": {
               "input_tokens": inp, "output_tokens": out, "cache_read_input_tokens": read}}}
          for n, inp, out, read, stop in ((1, 900, 0, 0, None), (2, 1200, 80, 3000, "end_turn")))]
    path = tmp_path / "p" / "s1.jsonl"
    path.parent.mkdir()
    path.write_text("".join(json.dumps(x, separators=(",", ":")) + "\n" for x in lines))

    def response(number: int, figures: tuple, request_id: str) -> Response:
        return Response("claude_code", "m", "", "s1", "p", str(path), number, number,
                        api_message_id="msg_1" if request_id else "ocgo",
                        request_id=request_id, input_tokens=figures[0],
                        output_tokens=figures[1], cache_creation_tokens=figures[2],
                        cache_read_tokens=figures[3])

    ours = [response(1, (10, 5, 500, 0), "req_1"), response(3, (1200, 80, 0, 3000), "")]
    theirs = [10 + 900 + 1200, 5 + 80, 0, 3000]  # ccusage 20.0.24's daily report
    found = ccusage.compare({"2025-01-01": [1210, 85, 500, 3000]}, {"2025-01-01": theirs},
                            {"2025-01-01": ours}, "daily", {},
                            {"2025-01-01": ccusage.requestless_lines(tmp_path)})
    (mismatch,) = found["mismatches"]
    assert mismatch["explained"]
    causes = {c["cause"]: c["tokens"] for c in mismatch["causes"]}
    assert causes == {ccusage.SPLIT_0_0: [0, 0, 500, 0], ccusage.REQUESTLESS: [-900, 0, 0, 0]}
