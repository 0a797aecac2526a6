"""`threadline usage` and the store's GetUsage: transcripts written here, imported through the
real pipeline (or written through the store), then totalled per period."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
from pathlib import Path

import grpc
import pytest
from store_support import PATH, batch, running_store, write

from threadline.v1 import common_pb2 as pb
from threadline.v1 import store_pb2

KEYS = {"period", "input_tokens", "output_tokens", "cache_creation_tokens", "cache_read_tokens",
        "total_tokens", "cost_usd", "messages", "unpriced_messages", "unpriced_models",
        "long_context_messages", "models", "agents", "first_timestamp", "last_timestamp"}


def line(**fields) -> bytes:
    """One transcript line as Claude Code writes it: compact JSON."""
    return json.dumps(fields, separators=(",", ":")).encode() + b"\n"


def assistant(uuid: str, session: str, ts: str, msg_id: str, request_id: str | None,
              usage: dict, model: str = "claude-sonnet-4-5-20250929", sidechain: bool = False,
              parent: str = "u0", cwd: str = "/home/u/app") -> bytes:
    fields = {"parentUuid": parent, "isSidechain": sidechain, "userType": "external",
              "cwd": cwd, "sessionId": session, "version": "2.0.76",
              "type": "assistant", "uuid": uuid, "timestamp": ts,
              "message": {"id": msg_id, "type": "message", "role": "assistant", "model": model,
                          "content": [{"type": "text", "text": f"reply {uuid}"}],
                          "stop_reason": None, "usage": usage}}
    if request_id is not None:
        fields["requestId"] = request_id
    return line(**fields)


def usage(input_tokens: int, output_tokens: int, cache_write: int = 0, cache_read: int = 0,
          one_hour: int = 0) -> dict:
    return {"input_tokens": input_tokens, "output_tokens": output_tokens,
            "cache_creation_input_tokens": cache_write, "cache_read_input_tokens": cache_read,
            "cache_creation": {"ephemeral_5m_input_tokens": cache_write - one_hour,
                               "ephemeral_1h_input_tokens": one_hour},
            "service_tier": "standard"}


STREAMED = [assistant(f"a{n}", "s1", f"2025-03-01T23:30:0{n}.000Z", "msg_A", "req_A",
                      usage(10, out, 1000, 5000, one_hour=1000), parent=f"a{n - 1}")
            for n, out in ((1, 1), (2, 1), (3, 300))]
# Costs under the bundled table (USD per million tokens).
COST_A = (10 * 3 + 300 * 15 + 1000 * 6 + 5000 * 0.3) / 1e6  # Sonnet 4.5, 1-hour cache write
COST_L = (150_000 * 6 + 60_000 * 0.6 + 1000 * 22.5) / 1e6  # Sonnet 4 above 200K: every token
COST_B = (20 * 3 + 50 * 15) / 1e6
COST_S = (5 * 3 + 7 * 15) / 1e6


@pytest.fixture(scope="module")
def db(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("usage") / "projects"
    app, other = root / "-home-u-app", root / "-home-u-other"
    (app / "s1" / "subagents").mkdir(parents=True)
    other.mkdir()
    user = line(parentUuid=None, isSidechain=False, userType="external", cwd="/home/u/app",
                sessionId="s1", version="2.0.76", type="user", uuid="u0",
                timestamp="2025-03-01T23:29:00.000Z",
                message={"role": "user", "content": "hello"})
    (app / "s1.jsonl").write_bytes(
        user + b"".join(STREAMED)
        + assistant("y1", "s1", "2025-03-01T23:40:00.000Z", "6b3e174b-339c-42a5", None,
                    usage(0, 0), model="<synthetic>")
        + assistant("n1", "s1", "2025-03-02T10:00:00.000Z", "msg_U", "req_U", usage(100, 10),
                    model="claude-nova-1")
        + assistant("l1", "s1", "2025-03-02T11:00:00.000Z", "msg_L", "req_L",
                    usage(150_000, 1000, 0, 60_000), model="claude-sonnet-4-20250514"))
    # A resumed session replays s1's lines (same uuids) before its own.
    (app / "s2.jsonl").write_bytes(
        user + b"".join(STREAMED)
        + assistant("b1", "s2", "2025-03-05T09:00:00.000Z", "msg_B", "req_B", usage(20, 50)))
    # A /btw side question: replays msg_A under a new requestId, then answers on its own.
    (app / "s1" / "subagents" / "agent-aside_question-1.jsonl").write_bytes(
        assistant("x1", "s1", "2025-03-01T23:45:00.000Z", "msg_A", "req_btw",
                  usage(10, 300, 1000, 5000, one_hour=1000), sidechain=True, parent=None)
        + assistant("x2", "s1", "2025-03-01T23:46:00.000Z", "msg_S", "req_S", usage(5, 7),
                    sidechain=True, parent="x1"))
    # A third-party backend: no requestId, ids without msg_, one id for every call.
    (other / "m1.jsonl").write_bytes(
        b"".join(assistant(f"m{n}", "m1", f"2025-04-10T08:00:0{n}.000Z", "0a1b2c", None,
                           usage(1200, out), model="MiniMax-M2", cwd="/home/u/other")
                 for n, out in ((1, 3), (2, 180)))
        + assistant("m3", "m1", "2025-04-10T08:01:00.000Z", "0a1b2c", None, usage(1650, 60),
                    model="MiniMax-M2", cwd="/home/u/other"))
    path = root.parent / "t.db"
    subprocess.run([sys.executable, "-m", "cli", "import", "--db", str(path), "--json",
                    str(root)], check=True, capture_output=True, timeout=300)
    return path


def threadline(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "cli", *args], capture_output=True,
                          text=True, timeout=60)


def usage_json(db: Path, *args: str) -> list[dict]:
    result = threadline("usage", "--db", str(db), "--json", *args)
    assert result.returncode == 0, result.stderr
    rows = json.loads(result.stdout)
    assert isinstance(rows, list)
    for r in rows:
        assert KEYS <= set(r)
    return rows


def by_period(rows: list[dict]) -> dict[str, dict]:
    return {r["period"]: r for r in rows}


def test_each_api_response_is_counted_once(db):
    sessions = by_period(usage_json(db, "--by", "session"))
    assert set(sessions) == {"s1", "s2", "m1"}
    s1 = sessions["s1"]
    # msg_A once with its final figures (streamed in 3 lines, replayed by s2.jsonl by uuid
    # and by the side question under another requestId), msg_S, msg_U, msg_L.
    assert s1["messages"] == 4
    assert (s1["input_tokens"], s1["output_tokens"], s1["cache_creation_tokens"],
            s1["cache_read_tokens"]) == (10 + 5 + 100 + 150_000, 300 + 7 + 10 + 1000, 1000,
                                         5000 + 60_000)
    assert s1["cost_usd"] == pytest.approx(COST_A + COST_S + COST_L)
    assert (s1["unpriced_messages"], s1["unpriced_models"]) == (1, ["claude-nova-1"])
    assert s1["long_context_messages"] == 1
    assert "<synthetic>" not in s1["models"]
    s2 = sessions["s2"]
    assert (s2["messages"], s2["input_tokens"], s2["output_tokens"]) == (1, 20, 50)
    assert s2["cost_usd"] == pytest.approx(COST_B)
    # Third-party: the split response once; the next call with the same id is another call.
    m1 = sessions["m1"]
    assert (m1["messages"], m1["input_tokens"], m1["output_tokens"]) == (2, 2850, 240)
    assert (m1["unpriced_messages"], m1["cost_usd"]) == (2, 0.0)


def test_days_in_utc_and_in_another_time_zone(db):
    utc = by_period(usage_json(db, "--by", "day", "--timezone", "UTC"))
    assert list(utc) == ["2025-03-01", "2025-03-02", "2025-03-05", "2025-04-10"]
    assert utc["2025-03-01"]["messages"] == 2  # msg_A (23:30Z) and msg_S (23:46Z)
    berlin = by_period(usage_json(db, "--by", "day", "--timezone", "Europe/Berlin"))
    assert list(berlin) == ["2025-03-02", "2025-03-05", "2025-04-10"]
    assert berlin["2025-03-02"]["messages"] == 4
    assert berlin["2025-03-02"]["first_timestamp"] == "2025-03-01T23:30:03.000Z"


def test_every_grouping(db):
    weeks = usage_json(db, "--by", "week", "--timezone", "UTC")
    assert [(w["period"], w["start"]) for w in weeks] == [
        ("2025-W09", "2025-02-24"), ("2025-W10", "2025-03-03"), ("2025-W15", "2025-04-07")]
    months = usage_json(db, "--by", "month", "--timezone", "UTC")
    assert [(m["period"], m["messages"]) for m in months] == [("2025-03", 5), ("2025-04", 2)]
    projects = by_period(usage_json(db, "--by", "project"))
    # Projects are working directories: s1's subagent folder is no project of its own.
    assert {k: v["messages"] for k, v in projects.items()} == {"/home/u/app": 5,
                                                               "/home/u/other": 2}
    models = by_period(usage_json(db, "--by", "model"))
    assert {k: v["messages"] for k, v in models.items()} == {
        "claude-sonnet-4-5-20250929": 3, "claude-nova-1": 1, "claude-sonnet-4-20250514": 1,
        "MiniMax-M2": 2}
    assert models["claude-sonnet-4-20250514"]["cost_usd"] == pytest.approx(COST_L)
    totals = [sum(r["total_tokens"] for r in usage_json(db, "--by", by))
              for by in ("day", "week", "month", "session", "project", "model")]
    assert len(set(totals)) == 1


def test_since_until_and_agent(db):
    rows = usage_json(db, "--since", "2025-03-02", "--until", "2025-03-05", "--timezone", "UTC")
    assert [r["period"] for r in rows] == ["2025-03-02", "2025-03-05"]
    assert usage_json(db, "--by", "session", "--since", "2025-04-01") == [
        r for r in usage_json(db, "--by", "session") if r["period"] == "m1"]
    assert len(usage_json(db, "--agent", "claude")) == len(usage_json(db))
    assert usage_json(db, "--agent", "codex") == []


def test_a_pricing_file_prices_what_the_bundled_table_does_not(db, tmp_path):
    prices = tmp_path / "prices.json"
    prices.write_text(json.dumps({"models": {"MiniMax-M2": {"input": 0.3, "output": 1.2}}}))
    (m1,) = [r for r in usage_json(db, "--by", "session", "--pricing", str(prices))
             if r["period"] == "m1"]
    assert m1["unpriced_messages"] == 0
    assert m1["cost_usd"] == pytest.approx((2850 * 0.3 + 240 * 1.2) / 1e6)
    result = threadline("usage", "--db", str(db), "--by", "session")
    assert "MiniMax-M2" in result.stdout, "the file applies only where it is given"


def test_the_table_for_a_terminal(db):
    result = threadline("usage", "--db", str(db), "--timezone", "UTC")
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0].split()[:3] == ["DAY", "MODELS", "INPUT"]
    assert any(row.startswith("2025-03-02") and "*" in row for row in lines), \
        "a cost missing unpriced responses is marked"
    total = next(row for row in lines if row.startswith("total"))
    assert "152,985" in total  # input tokens of every response
    assert "dates in UTC; prices: 2026-11-01 table" in result.stdout
    assert "3 responses of models without a price" in result.stdout
    assert "MiniMax-M2, claude-nova-1" in result.stdout


@pytest.mark.parametrize("args, message", [
    (["--by", "year"], "by: expected one of day, week, month, session, project, model"),
    (["--timezone", "Nowhere/Else"], "unknown IANA time zone"),
    (["--since", "yesterday"], "since: expected YYYY-MM-DD"),
    (["--agent", "cursor"], "agent: expected one of claude, codex, gemini"),
])
def test_bad_arguments_say_what_is_wrong(db, args, message):
    result = threadline("usage", "--db", str(db), *args)
    assert result.returncode == 2
    assert message in result.stderr


def test_a_missing_database_or_pricing_file_is_an_error(db, tmp_path):
    result = threadline("usage", "--db", str(tmp_path / "none.db"))
    assert result.returncode == 2 and "no threadline database" in result.stderr
    result = threadline("usage", "--db", str(db), "--pricing", str(tmp_path / "none.json"))
    assert result.returncode == 2 and "cannot read pricing file" in result.stderr


# --- Codex and Gemini records, and the store's GetUsage ------------------------------------

def record(key: str, kind: str, fmt: int, session: str, ts: str, *, model: str = "",
           api_id: str = "", tokens: tuple[int, int, int] | None = None,
           line_no: int = 1) -> pb.Message:
    m = pb.Message(uuid=key, key=key, session_id=session, project_key="proj", type=kind,
                   timestamp=ts, format=fmt, model=model, api_message_id=api_id, raw=b"{}",
                   source=pb.SourcePosition(path=PATH, byte_offset=line_no * 10,
                                            line_number=line_no, byte_length=2))
    if tokens is not None:
        net_input, cached, output = tokens
        m.usage.CopyFrom(pb.TokenUsage(input_tokens=net_input, cache_read_input_tokens=cached,
                                       output_tokens=output))
    return m


CODEX, GEMINI = pb.SOURCE_FORMAT_CODEX, pb.SOURCE_FORMAT_GEMINI
MIXED = [
    record("c1", "turn_context", CODEX, "rollout-1", "2025-09-25T01:00:00Z", model="gpt-5-codex"),
    record("c2", "response_item", CODEX, "rollout-1", "2025-09-25T01:00:01Z"),
    record("c3", "event_msg", CODEX, "rollout-1", "2025-09-25T01:00:02Z",
           tokens=(335, 2560, 246)),
    record("c4", "event_msg", CODEX, "rollout-1", "2025-09-25T01:00:02Z",
           tokens=(335, 2560, 246)),  # re-emitted: no model output since the last one
    record("g1", "gemini", GEMINI, "chat-1", "2025-09-26T10:00:00Z", model="gemini-2.5-pro",
           api_id="g-1", tokens=(1000, 0, 40)),
    record("g2", "gemini", GEMINI, "chat-1", "2025-09-26T10:00:00Z", model="gemini-2.5-pro",
           api_id="g-1", tokens=(1000, 0, 90)),  # the same message appended again
    record("k1", "assistant", pb.SOURCE_FORMAT_CLAUDE_CODE, "s1", "2025-09-27T10:00:00Z",
           model="claude-haiku-4-5-20251001", api_id="msg_1", tokens=(10, 0, 20)),
]
COST_CODEX = (335 * 1.25 + 2560 * 0.125 + 246 * 10) / 1e6
COST_GEMINI = (1000 * 1.25 + 90 * 10) / 1e6


@pytest.fixture(scope="module")
def mixed_db(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("mixed") / "t.db"

    async def fill():
        async with running_store(path) as (_run, stub):
            await write(stub, [batch(1, MIXED)])

    asyncio.run(fill())
    return path


def test_codex_and_gemini_usage(mixed_db):
    agents = {r["period"]: r for r in usage_json(mixed_db, "--by", "model")}
    assert agents["gpt-5-codex"]["messages"] == 1
    assert agents["gpt-5-codex"]["cost_usd"] == pytest.approx(COST_CODEX)
    assert agents["gemini-2.5-pro"]["output_tokens"] == 90
    assert agents["gemini-2.5-pro"]["cost_usd"] == pytest.approx(COST_GEMINI)
    for agent, fmt in (("claude", "claude_code"), ("codex", "codex"), ("gemini", "gemini")):
        rows = usage_json(mixed_db, "--by", "session", "--agent", agent)
        assert len(rows) == 1 and rows[0]["agents"] == [fmt]


def test_get_usage_over_grpc(mixed_db):
    async def ask():
        async with running_store(mixed_db) as (_run, stub):
            reply = await stub.GetUsage(store_pb2.GetUsageRequest(by="day"))
            codex = await stub.GetUsage(store_pb2.GetUsageRequest(by="month", agent="codex"))
            with pytest.raises(grpc.aio.AioRpcError) as refused:
                await stub.GetUsage(store_pb2.GetUsageRequest(by="year"))
            return reply, codex, refused.value

    reply, codex, refused = asyncio.run(ask())
    assert [r.period for r in reply.rows] == ["2025-09-25", "2025-09-26", "2025-09-27"]
    assert reply.pricing_date == "2026-11-01"
    assert reply.total.messages == 3
    assert reply.total.cost_usd == pytest.approx(
        COST_CODEX + COST_GEMINI + (10 * 1 + 20 * 5) / 1e6)
    assert [(r.period, r.start, r.messages, list(r.agents)) for r in codex.rows] == [
        ("2025-09", "2025-09-01", 1, ["codex"])]
    assert refused.code().name == "INVALID_ARGUMENT" and "by: expected" in refused.details()


def test_get_usage_reads_the_pricing_file_on_each_request(mixed_db, tmp_path):
    prices = tmp_path / "prices.json"

    async def ask():
        async with running_store(mixed_db, pricing_file=prices) as (_run, stub):
            request = store_pb2.GetUsageRequest(by="model", agent="codex")
            prices.write_text(json.dumps({"models": {"gpt-5-codex": {"output": 20}}}))
            first = await stub.GetUsage(request)
            prices.write_text("{oops")
            with pytest.raises(grpc.aio.AioRpcError) as refused:
                await stub.GetUsage(request)
            return first, refused.value

    first, refused = asyncio.run(ask())
    assert first.rows[0].cost_usd == pytest.approx((335 * 1.25 + 2560 * 0.125 + 246 * 20) / 1e6)
    assert first.pricing_date == f"2026-11-01 + {prices}"
    assert refused.code().name == "INVALID_ARGUMENT" and "not valid JSON" in refused.details()


def test_a_timestamp_with_no_local_date_is_reported_without_one(tmp_path):
    """0001-01-01T00:00:00Z is valid but has no date west of UTC: it is `(no timestamp)`,
    over gRPC (not INTERNAL) and in the CLI's default local zone."""
    path = tmp_path / "t.db"
    first = record("e1", "assistant", pb.SOURCE_FORMAT_CLAUDE_CODE, "s1",
                   "0001-01-01T00:00:00Z", model="claude-haiku-4-5-20251001", api_id="msg_e1",
                   tokens=(10, 0, 20))
    later = record("e2", "assistant", pb.SOURCE_FORMAT_CLAUDE_CODE, "s1",
                   "2025-09-27T10:00:00Z", model="claude-haiku-4-5-20251001", api_id="msg_e2",
                   tokens=(10, 0, 20), line_no=2)

    async def ask():
        async with running_store(path) as (_run, stub):
            await write(stub, [batch(1, [first, later])])
            return await stub.GetUsage(store_pb2.GetUsageRequest(
                by="day", timezone="America/Los_Angeles"))

    reply = asyncio.run(ask())
    assert [(r.period, r.messages) for r in reply.rows] == [("2025-09-27", 1),
                                                             ("(no timestamp)", 1)]
    assert reply.total.messages == 2
    result = subprocess.run([sys.executable, "-m", "cli", "usage", "--db", str(path),
                             "--json"], capture_output=True, text=True, timeout=60,
                            env={**os.environ, "TZ": "America/Los_Angeles"})
    assert result.returncode == 0, result.stderr
    assert [r["period"] for r in json.loads(result.stdout)] == ["2025-09-27", "(no timestamp)"]
