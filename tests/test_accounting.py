"""Token accounting: which stored lines are one API response, their final figures, prices,
and totals per period (threadline/storage/accounting.py, threadline/storage/pricing.py)."""

from __future__ import annotations

import itertools
import json
import math
import subprocess
import sys
from datetime import date

import orjson
import pytest

from threadline.domain import timestamps
from threadline.storage import accounting, pricing
from threadline.storage.accounting import billable_responses, usage_query, usage_report
from threadline.storage.errors import InvalidArgument
from threadline.storage.pricing import PricingError
from threadline.storage.readonly import open_readonly
from threadline.storage.usage import usage_rows

TABLE = pricing.load()
_seq = itertools.count(1)


def row(**fields) -> dict:
    """A stored row as usage_rows yields it (a Claude Code assistant line)."""
    base = {"seq": next(_seq), "type": "assistant", "format": "claude_code",
            "model": "claude-sonnet-4-5-20250929", "request_id": "", "api_message_id": "",
            "is_sidechain": False, "timestamp": "2025-06-01T12:00:00.000Z", "session_id": "s1",
            "project_key": "p", "source_path": "/p/s1.jsonl", "source_line_number": 1,
            "input_tokens": 0, "output_tokens": 0, "cache_creation_input_tokens": 0,
            "cache_creation_5m_tokens": 0, "cache_creation_1h_tokens": 0,
            "cache_read_input_tokens": 0, "reasoning_output_tokens": 0, "embedded": None}
    base.update(fields)
    return base


def figures(r: accounting.Response) -> tuple[int, int, int, int]:
    return r.input_tokens, r.output_tokens, r.cache_creation_tokens, r.cache_read_tokens


# --- one response, counted once, with its final figures -----------------------------------

def test_streaming_split_is_one_response_with_the_final_figures():
    lines = [row(api_message_id="msg_1", request_id="req_1", input_tokens=4, output_tokens=out,
                 cache_creation_input_tokens=300, cache_read_input_tokens=9000,
                 source_line_number=n)
             for n, out in enumerate([1, 1, 257, 12], start=1)]
    (r,) = billable_responses(lines)
    assert figures(r) == (4, 257, 300, 9000)
    assert (r.source_line, r.lines) == (3, 4)


def test_equal_figures_take_the_later_line():
    lines = [row(api_message_id="msg_1", request_id="req_1", output_tokens=7,
                 timestamp=f"2025-06-01T12:00:0{n}.000Z", source_line_number=n)
             for n in (1, 2)]
    (r,) = billable_responses(lines)
    assert (r.source_line, r.timestamp) == (2, "2025-06-01T12:00:02.000Z")


def test_a_response_copied_into_another_file_and_session_counts_once():
    original = row(api_message_id="msg_1", request_id="req_1", input_tokens=5, output_tokens=9)
    copy = dict(original, seq=next(_seq), session_id="s2", source_path="/p/s2.jsonl")
    assert len(billable_responses([original, copy])) == 1


def test_sidechain_replay_under_a_new_request_id_is_not_counted_twice():
    parent = row(api_message_id="msg_1", request_id="req_1", input_tokens=3, output_tokens=40,
                 cache_read_input_tokens=5000)
    replay = row(api_message_id="msg_1", request_id="req_btw", is_sidechain=True,
                 input_tokens=3, output_tokens=40, cache_read_input_tokens=5000,
                 source_path="/p/s1/subagents/agent-aside_question-1.jsonl")
    own = row(api_message_id="msg_2", request_id="req_btw2", is_sidechain=True,
              output_tokens=11, source_path=replay["source_path"])
    for order in ([parent, replay, own], [replay, parent, own]):
        responses = billable_responses(order)
        assert len(responses) == 2, "the replay collapses, the side question's own reply stays"
        first = next(r for r in responses if r.api_message_id == "msg_1")
        assert not first.is_sidechain and first.source_path == "/p/s1.jsonl"


def test_requestless_ids_count_within_a_session_and_prompt():
    """Third-party backends: ids without `msg_`, no requestId; some reuse one id for every
    call. A streamed count only grows, so a line with fewer output tokens is the next call."""
    split = [row(api_message_id="0a1b2c", input_tokens=1200, cache_read_input_tokens=0,
                 output_tokens=out, model="MiniMax-M2") for out in (3, 180)]
    next_call = row(api_message_id="0a1b2c", input_tokens=1650, output_tokens=60,
                    model="MiniMax-M2")
    other_session = dict(split[1], seq=next(_seq), session_id="s2")
    responses = billable_responses([*split, next_call, other_session])
    assert sorted((r.session_id, r.input_tokens, r.output_tokens) for r in responses) == [
        ("s1", 1200, 180), ("s1", 1650, 60), ("s2", 1200, 180)]


def gateway(message_id: str, second: int, output: int, input_tokens: int, stop: str = "",
            cache_read: int = 0, **fields) -> dict:
    """A line a gateway (no requestId) wrote: early lines have 0 output tokens, no stop
    reason and an estimated input; the final one the real input and cache reads."""
    return row(api_message_id=message_id, model="MiniMax-M2.1", output_tokens=output,
               input_tokens=input_tokens, cache_read_input_tokens=cache_read, stop_reason=stop,
               timestamp=f"2025-06-01T12:00:{second:02d}.000Z", source_line_number=second,
               **fields)


def test_a_gateway_response_counts_once_with_its_final_line():
    lines = [gateway("0f3a", 1, 0, 900), gateway("0f3a", 2, 0, 900),
             gateway("0f3a", 3, 80, 1200, stop="end_turn", cache_read=3000)]
    (r,) = billable_responses(lines)
    assert figures(r) == (1200, 80, 0, 3000)
    assert (r.source_line, r.timestamp, r.lines) == (3, "2025-06-01T12:00:03.000Z", 3)


def test_gateway_calls_that_share_one_id_stay_apart():
    """Some gateways answer every call with the same id: a line after a finished response
    (stop_reason) with other figures, a line whose output count drops, and a line with other
    prompt figures after a line with output each start the next call."""
    lines = [gateway("ocgo", 1, 0, 900), gateway("ocgo", 2, 80, 1200, "tool_use", 3000),
             gateway("ocgo", 5, 0, 950), gateway("ocgo", 6, 40, 1300, "end_turn", 4000),
             # no stop reason at all: one line per call, the count growing from call to call
             gateway("ocgo", 8, 5, 100), gateway("ocgo", 9, 7, 200)]
    assert [figures(r) for r in billable_responses(lines)] == [
        (1200, 80, 0, 3000), (1300, 40, 0, 4000), (100, 5, 0, 0), (200, 7, 0, 0)]
    # The same lines in another session are other calls.
    moved = [dict(x, seq=next(_seq), session_id="s2") for x in lines]
    assert len(billable_responses([*lines, *moved])) == 8


def test_requestless_lines_that_repeat_the_final_usage_are_one_response():
    """Claude Code 2.1.x writes the final usage and stop_reason on every block line."""
    lines = [gateway("0f3b", n, 210, 1200, "tool_use", 3000) for n in (1, 2, 3)]
    (r,) = billable_responses(lines)
    assert figures(r) == (1200, 210, 0, 3000) and r.lines == 3


def agent_progress(inner: dict, agent: str, second: int, request_id: str = "") -> dict:
    """A parent session's agent_progress line embedding one subagent line."""
    outer = {"type": "assistant", "isSidechain": True, "agentId": agent,
             "timestamp": f"2025-06-01T12:00:{second:02d}.000Z", "message": inner}
    if request_id:
        outer["requestId"] = request_id
    raw = orjson.dumps({"type": "progress", "timestamp": outer["timestamp"],
                        "data": {"type": "agent_progress", "agentId": agent,
                                 "message": outer}})
    return row(type="progress", model="", input_tokens=None, output_tokens=None,
               embedded=raw)


def test_agent_progress_copies_of_gateway_calls_collapse_call_by_call():
    """A subagent behind a gateway that reuses one id: its own file's lines and the copies in
    the parent's agent_progress lines (beside the parent's own calls with the same id) are
    two calls, not one per line or per copy."""
    sub = "/p/s1/subagents/agent-a1.jsonl"
    own = [gateway("ocgo", 1, 0, 500, is_sidechain=True, source_path=sub),
           gateway("ocgo", 2, 30, 700, "tool_use", 100, is_sidechain=True, source_path=sub),
           gateway("ocgo", 3, 0, 800, is_sidechain=True, source_path=sub),
           gateway("ocgo", 4, 20, 900, "end_turn", 200, is_sidechain=True, source_path=sub)]

    def inner(line: dict) -> dict:
        return {"id": "ocgo", "model": "MiniMax-M2.1", "stop_reason": line["stop_reason"] or None,
                "usage": {"input_tokens": line["input_tokens"],
                          "output_tokens": line["output_tokens"],
                          "cache_read_input_tokens": line["cache_read_input_tokens"]}}

    copies = [agent_progress(inner(x), "a1", n) for n, x in enumerate(own, start=1)]
    parent = [gateway("ocgo", 10, 0, 5000), gateway("ocgo", 11, 60, 5200, "end_turn", 9000)]
    for rows in ([*copies[:2], *parent, *copies[2:], *own], [*own, *copies, *parent]):
        responses = billable_responses([dict(x, seq=next(_seq)) for x in rows])
        assert sorted(figures(r) for r in responses) == [
            (700, 30, 0, 100), (900, 20, 0, 200), (5200, 60, 0, 9000)]
        assert all(not r.embedded for r in responses), "the subagent's own lines stand"


def test_cache_writes_split_0_0_still_count():
    """`cache_creation` may split the writes 5m/1h as 0/0 beside a non-zero
    `cache_creation_input_tokens`: the writes were billed (as 5-minute writes)."""
    from services.ingest.formats.claude import claude_usage

    usage = claude_usage({"input_tokens": 10, "output_tokens": 5,
                          "cache_creation_input_tokens": 500, "cache_read_input_tokens": 0,
                          "cache_creation": {"ephemeral_5m_input_tokens": 0,
                                             "ephemeral_1h_input_tokens": 0}})
    (r,) = billable_responses([row(
        api_message_id="msg_1", request_id="req_1", input_tokens=usage.input_tokens,
        output_tokens=usage.output_tokens,
        cache_creation_input_tokens=usage.cache_creation_input_tokens,
        cache_creation_5m_tokens=usage.cache_creation_5m_tokens,
        cache_creation_1h_tokens=usage.cache_creation_1h_tokens)])
    assert figures(r) == (10, 5, 500, 0)
    (day,) = usage_report([r], TABLE, usage_query("day", timezone_name="UTC"))
    assert day["cost_usd"] == pytest.approx((10 * 3 + 5 * 15 + 500 * 3.75) / 1e6)


def test_lines_without_a_message_id_count_each():
    lines = [row(input_tokens=10, output_tokens=1), row(input_tokens=10, output_tokens=1)]
    assert len(billable_responses(lines)) == 2


def test_synthetic_and_empty_lines_bill_nothing():
    lines = [row(model="<synthetic>", api_message_id="6b3e174b-339c", request_id=""),
             row(model="<synthetic>", input_tokens=3),  # written locally: no call, whatever it says
             row(api_message_id="msg_0", request_id="req_0"),  # all zero: an aborted call
             row(input_tokens=None)]  # no usage at all (and nothing embedded)
    assert billable_responses(lines) == []


def test_agent_progress_embeds_a_subagent_response_once():
    inner = {"id": "msg_sub", "model": "claude-haiku-4-5-20251001",
             "usage": {"input_tokens": 7, "output_tokens": 30, "cache_read_input_tokens": 900,
                       "cache_creation_input_tokens": 50,
                       "cache_creation": {"ephemeral_5m_input_tokens": 0,
                                          "ephemeral_1h_input_tokens": 50}}}
    raw = orjson.dumps({"type": "progress", "timestamp": "2025-06-01T12:00:09.000Z",
                        "data": {"type": "agent_progress", "message": {
                            "type": "assistant", "requestId": "req_sub", "isSidechain": True,
                            "timestamp": "2025-06-01T12:00:05.000Z", "message": inner}}})
    progress = row(type="progress", model="", input_tokens=None, output_tokens=None,
                   embedded=raw)
    (r,) = billable_responses([progress])
    assert (r.api_message_id, r.request_id, r.model) == ("msg_sub", "req_sub",
                                                         "claude-haiku-4-5-20251001")
    assert figures(r) == (7, 30, 50, 900) and r.cache_creation_1h_tokens == 50
    assert r.timestamp == "2025-06-01T12:00:05.000Z"
    own_file = row(api_message_id="msg_sub", request_id="req_sub", is_sidechain=True,
                   input_tokens=7, output_tokens=30, cache_creation_input_tokens=50,
                   cache_read_input_tokens=900, model="claude-haiku-4-5-20251001")
    for order in ([progress, own_file], [own_file, progress]):
        (r,) = billable_responses([dict(x, seq=next(_seq)) for x in order])
        assert not r.embedded and r.lines == 2, "the response's own line stands for it"
    assert billable_responses([row(type="progress", input_tokens=None,
                                   embedded=b'{"data": {"type": "hook_progress"}}')]) == []


def codex(kind: str, **fields) -> dict:
    base = {"format": "codex", "type": kind, "model": "", "session_id": "c1",
            "input_tokens": None, "output_tokens": None}
    base.update(fields)
    return row(**base)


def test_codex_calls_take_the_model_of_the_latest_turn_context():
    rows = [codex("turn_context", model="gpt-5-codex"),
            codex("response_item"),
            codex("event_msg", input_tokens=400, cache_read_input_tokens=2000, output_tokens=90,
                  reasoning_output_tokens=64),
            # Re-emitted with the same figures and no model output since: the same call.
            codex("event_msg", input_tokens=400, cache_read_input_tokens=2000, output_tokens=90,
                  reasoning_output_tokens=64),
            codex("turn_context", model="gpt-5"),
            codex("response_item"),
            # The same figures after new model output: a new call.
            codex("event_msg", input_tokens=400, cache_read_input_tokens=2000, output_tokens=90,
                  reasoning_output_tokens=64),
            codex("response_item", session_id="c2"),
            codex("event_msg", session_id="c2", input_tokens=5, output_tokens=5)]
    responses = billable_responses(rows)
    assert [(r.session_id, r.model) for r in responses] == [
        ("c1", "gpt-5-codex"), ("c1", "gpt-5"), ("c2", "")]
    report = usage_report(responses, TABLE, usage_query("model"))
    unpriced = next(r for r in report if r["period"] == accounting.NO_MODEL)
    assert unpriced["unpriced_messages"] == 1


def test_gemini_keeps_the_last_version_of_a_message():
    versions = [row(format="gemini", type="gemini", model="gemini-2.5-pro",
                    api_message_id="g-1", output_tokens=out, input_tokens=100)
                for out in (50, 20)]
    other_session = dict(versions[0], seq=next(_seq), session_id="s2")
    responses = billable_responses([*versions, other_session])
    assert sorted((r.session_id, r.output_tokens) for r in responses) == [("s1", 20),
                                                                          ("s2", 50)]


# --- prices --------------------------------------------------------------------------------

def test_bundled_table_is_dated_and_names_its_sources():
    assert TABLE.date == pricing.bundled_file().stem == "2026-11-01"
    assert {"anthropic", "openai", "google"} <= set(TABLE.sources)
    assert all(m.source in TABLE.sources for m in TABLE.models.values())


@pytest.mark.parametrize("name, entry", [
    ("claude-sonnet-4-5-20250929", "claude-sonnet-4-5"),
    ("claude-opus-4-1-20250805", "claude-opus-4-1"),
    ("us.anthropic.claude-sonnet-4-20250514-v1:0", "claude-sonnet-4"),
    ("claude-sonnet-4@20250514", "claude-sonnet-4"),
    ("anthropic/claude-haiku-4-5", "claude-haiku-4-5"),
    ("claude-opus-4-6[1m]", "claude-opus-4-6"),
    ("gpt-5-2025-08-07", "gpt-5"),
    ("GPT-5-Codex", "gpt-5-codex"),
    ("models/gemini-2.5-flash", "gemini-2.5-flash"),
])
def test_model_spellings_find_their_price(name, entry):
    assert TABLE.lookup(name).name == entry


@pytest.mark.parametrize("name", ["<synthetic>", "claude-sonnet-9", "claude-opus-4-9", "",
                                  "gpt-5.9", "MiniMax-M2"])
def test_unknown_models_have_no_price(name):
    assert TABLE.lookup(name) is None
    cost = TABLE.cost(name, input_tokens=1000)
    assert not cost.priced and cost.usd == 0.0 and "no price" in cost.missing


def test_each_kind_of_token_has_its_rate():
    cost = TABLE.cost("claude-opus-4-1-20250805", input_tokens=1_000_000,
                      output_tokens=1_000_000, cache_read_tokens=1_000_000)
    assert cost.usd == pytest.approx(15 + 75 + 1.5)


def test_one_hour_cache_writes_cost_twice_the_input_rate():
    five = TABLE.cost("claude-sonnet-4-6", cache_creation_tokens=1_000_000)
    hour = TABLE.cost("claude-sonnet-4-6", cache_creation_tokens=1_000_000,
                      cache_creation_1h_tokens=1_000_000)
    mixed = TABLE.cost("claude-sonnet-4-6", cache_creation_tokens=1_000_000,
                       cache_creation_5m_tokens=250_000, cache_creation_1h_tokens=500_000)
    assert (five.usd, hour.usd) == (pytest.approx(3.75), pytest.approx(6.0))
    # Tokens the split does not account for are 5-minute writes.
    assert mixed.usd == pytest.approx((0.25 + 0.25) * 3.75 + 0.5 * 6.0)


def test_long_context_tier_bills_the_whole_request_above_the_threshold():
    at = TABLE.cost("claude-sonnet-4-20250514", input_tokens=100_000,
                    cache_read_tokens=100_000, output_tokens=10_000)
    above = TABLE.cost("claude-sonnet-4-20250514", input_tokens=100_001,
                       cache_read_tokens=100_000, output_tokens=10_000)
    assert not at.long_context and at.usd == pytest.approx(0.3 + 0.03 + 0.15)
    assert above.long_context
    assert above.usd == pytest.approx(100_001 * 6e-6 + 0.06 + 10_000 * 22.5e-6)
    # Cache writes count toward the threshold and are billed at the tier's rates too.
    writes = TABLE.cost("claude-sonnet-4-5", input_tokens=1, cache_creation_tokens=200_000,
                        cache_creation_1h_tokens=200_000)
    assert writes.long_context and writes.usd == pytest.approx(6e-6 + 200_000 * 12e-6)
    # A model without a tier pays its one rate at any length.
    flat = TABLE.cost("claude-opus-4-6", input_tokens=900_000)
    assert not flat.long_context and flat.usd == pytest.approx(4.5)


def test_a_kind_of_token_without_a_rate_leaves_the_response_unpriced():
    assert TABLE.cost("claude-3-sonnet", input_tokens=10, output_tokens=10).priced
    cost = TABLE.cost("claude-3-sonnet", input_tokens=10, cache_read_tokens=5)
    assert not cost.priced and "cache_read" in cost.missing


def test_a_pricing_file_overrides_and_extends_the_bundled_table(tmp_path):
    path = tmp_path / "prices.json"
    path.write_text(json.dumps({"date": "2026-12-01", "models": {
        "claude-sonnet-4-5": {"output": 20},
        "MiniMax-M2": {"input": 0.3, "output": 1.2, "cache_read": 0.03},
        "claude-sonnet-4": {"long_context": None}}}))
    table = pricing.load(path)
    assert table.date.startswith("2026-11-01 + ") and table.date.endswith("(2026-12-01)")
    merged = table.lookup("claude-sonnet-4-5-20250929")
    assert (merged.rates.input, merged.rates.output) == (3.0, 20.0)
    assert merged.long_context_threshold == 200_000, "fields not given are kept"
    assert table.cost("minimax-m2", input_tokens=1_000_000).usd == pytest.approx(0.3)
    assert not table.cost("claude-sonnet-4", input_tokens=300_000).long_context
    assert TABLE.lookup("claude-sonnet-4-5").rates.output == 15.0, "the bundled table is intact"


@pytest.mark.parametrize("content, message", [
    ("{not json", "not valid JSON"),
    ("[]", "expected a JSON object"),
    ('{"claude-x": {"input": 1}}', '"models"'),
    ('{"models": {"m": {"input": -1}}}', "rate >= 0"),
    ('{"models": {"m": {"input": "3"}}}', "rate >= 0"),
    ('{"models": {"m": {"cache_write": 3}}}', "unknown field(s) cache_write"),
    ('{"models": {"m": {"long_context": {"input": 2}}}}', "threshold_tokens"),
])
def test_a_bad_pricing_file_is_a_clear_error(tmp_path, content, message):
    path = tmp_path / "prices.json"
    path.write_text(content)
    with pytest.raises(PricingError, match=message.replace("(", r"\(").replace(")", r"\)")):
        pricing.load(path)
    with pytest.raises(PricingError, match="cannot read"):
        pricing.load(tmp_path / "missing.json")


# --- totals per period ---------------------------------------------------------------------

def at(timestamp: str, **fields) -> accounting.Response:
    fields = {"input_tokens": 1000, "output_tokens": 100} | fields
    return billable_responses([row(timestamp=timestamp, **fields)])[0]


def test_days_follow_the_time_zone():
    late = [at("2025-03-01T23:30:00.000Z"), at("2025-03-02T07:30:00Z")]

    def days(zone: str) -> list[tuple[str, int]]:
        return [(r["period"], r["messages"])
                for r in usage_report(late, TABLE, usage_query("day", timezone_name=zone))]

    assert days("UTC") == [("2025-03-01", 1), ("2025-03-02", 1)]
    assert days("Europe/Berlin") == [("2025-03-02", 2)]
    assert days("America/Los_Angeles") == [("2025-03-01", 2)]
    # Daylight saving time: 2025-03-30 01:30Z is 03:30 CEST, 2025-03-29 23:30Z 00:30 CET.
    spring = [at("2025-03-29T23:30:00Z"), at("2025-03-30T22:30:00Z")]
    assert [r["period"] for r in usage_report(
        spring, TABLE, usage_query("day", timezone_name="Europe/Berlin"))] == [
        "2025-03-30", "2025-03-31"]


def test_weeks_are_iso_weeks_and_months_calendar_months():
    responses = [at("2024-12-29T12:00:00Z"), at("2024-12-30T12:00:00Z"),
                 at("2025-01-05T12:00:00Z"), at("2025-01-06T12:00:00Z")]
    weeks = usage_report(responses, TABLE, usage_query("week", timezone_name="UTC"))
    assert [(w["period"], w["start"], w["messages"]) for w in weeks] == [
        ("2024-W52", "2024-12-23", 1), ("2025-W01", "2024-12-30", 2),
        ("2025-W02", "2025-01-06", 1)]
    months = usage_report(responses, TABLE, usage_query("month", timezone_name="UTC"))
    assert [(m["period"], m["start"], m["messages"]) for m in months] == [
        ("2024-12", "2024-12-01", 2), ("2025-01", "2025-01-01", 2)]


def test_since_and_until_are_inclusive_local_dates():
    responses = [at(f"2025-05-{d:02d}T22:30:00Z") for d in range(1, 6)]
    chosen = usage_report(responses, TABLE, usage_query(
        "day", since="2025-05-02", until="20250503", timezone_name="Asia/Tokyo"))
    # 22:30Z is the next morning in Tokyo: May 1..5 UTC are May 2..6 there.
    assert [r["period"] for r in chosen] == ["2025-05-02", "2025-05-03"]
    assert [r["input_tokens"] for r in chosen] == [1000, 1000]


def test_responses_without_a_readable_timestamp_are_shown_apart():
    responses = [at("yesterday"), at("2025-05-01T10:00:00Z")]
    report = usage_report(responses, TABLE, usage_query("day", timezone_name="UTC"))
    assert [r["period"] for r in report] == ["2025-05-01", accounting.NO_TIMESTAMP]
    assert usage_report(responses, TABLE, usage_query("day", since="2025-01-01")) == [
        usage_report(responses[1:], TABLE, usage_query("day", since="2025-01-01"))[0]]


@pytest.mark.parametrize("timestamp, zone", [
    ("0001-01-01T00:00:00Z", "America/Los_Angeles"),  # the day before year 1 there
    ("9999-12-31T23:59:59Z", "Asia/Tokyo"),  # the day after 9999-12-31 there
    ("0001-01-01T03:00:00+05:00", "Asia/Kolkata"),  # a date there, but none in UTC
])
def test_a_timestamp_with_no_date_in_the_zone_is_no_timestamp(timestamp, zone):
    responses = [at(timestamp), at("2025-05-01T10:00:00Z")]
    report = usage_report(responses, TABLE, usage_query("day", timezone_name=zone))
    assert [(r["period"], r["messages"]) for r in report] == [
        ("2025-05-01", 1), (accounting.NO_TIMESTAMP, 1)]
    assert (report[1]["first_timestamp"], report[1]["last_timestamp"]) == ("", "")
    assert accounting.total_row(report)["first_timestamp"] == "2025-05-01T10:00:00.000Z"
    assert usage_report(responses, TABLE, usage_query(
        "day", since="0001-01-01", timezone_name=zone)) == report[:1]
    for by in ("week", "month", "session"):
        assert sum(r["messages"] for r in usage_report(
            responses, TABLE, usage_query(by, timezone_name=zone))) == 2


def test_the_extreme_timestamps_have_dates_where_they_exist():
    report = usage_report([at("0001-01-01T00:00:00Z"), at("9999-12-31T23:59:59Z")], TABLE,
                          usage_query("day", timezone_name="UTC"))
    assert [(r["period"], r["first_timestamp"]) for r in report] == [
        ("0001-01-01", "0001-01-01T00:00:00.000Z"), ("9999-12-31", "9999-12-31T23:59:59.000Z")]


def test_rows_carry_costs_and_unpriced_responses():
    responses = [at("2025-05-01T10:00:00Z", model="claude-opus-4-1-20250805",
                    input_tokens=1_000_000, output_tokens=0),
                 at("2025-05-01T11:00:00Z", model="claude-nova-1", input_tokens=5)]
    (r,) = usage_report(responses, TABLE, usage_query("day", timezone_name="UTC"))
    assert r["cost_usd"] == pytest.approx(15.0)
    assert (r["messages"], r["unpriced_messages"], r["unpriced_models"]) == (
        2, 1, ["claude-nova-1"])
    assert r["models"] == ["claude-nova-1", "claude-opus-4-1-20250805"]
    assert r["input_tokens"] == 1_000_005 and r["agents"] == ["claude_code"]
    assert (r["first_timestamp"], r["last_timestamp"]) == ("2025-05-01T10:00:00.000Z",
                                                           "2025-05-01T11:00:00.000Z")


@pytest.mark.parametrize("kwargs, message", [
    ({"by": "year"}, "by: expected one of"),
    ({"timezone_name": "Mars/Olympus"}, "unknown IANA time zone"),
    ({"agent": "copilot"}, "agent: expected one of claude, codex, gemini"),
    ({"since": "01/02/2025"}, "since: expected YYYY-MM-DD"),
    ({"since": "2025-02-02", "until": "2025-02-01"}, "is after until"),
])
def test_bad_report_parameters_are_refused(kwargs, message):
    with pytest.raises(InvalidArgument, match=message):
        usage_query(**kwargs)


def test_timestamps_of_any_precision_parse():
    assert timestamps.parse_timestamp("2025-07-03T15:50:07.875917Z").microsecond == 875917
    assert timestamps.parse_timestamp("2025-07-03T15:50:07.8759171Z").microsecond == 875917
    assert timestamps.parse_timestamp("2025-07-03T15:50:07Z").second == 7
    assert timestamps.parse_timestamp("2025-07-03T15:50:07+02:00").hour == 15
    assert timestamps.parse_timestamp("2025-07-03T15:50:07").tzinfo is not None
    assert timestamps.parse_timestamp("not a time") is None
    assert usage_query(since="2025-01-02").since == date(2025, 1, 2)


# --- the real corpus -----------------------------------------------------------------------

def test_corpus_totals_agree_across_groupings(corpus, tmp_path):
    db = tmp_path / "corpus.db"
    subprocess.run([sys.executable, "-m", "cli", "import", "--db", str(db), "--json",
                    str(corpus)], check=True, capture_output=True, timeout=600)
    with open_readonly(db).connect() as conn:
        responses = billable_responses(usage_rows(conn))
        stored = {i for (i,) in conn.exec_driver_sql(
            "SELECT DISTINCT api_message_id FROM messages WHERE format = 'claude_code' "
            "AND request_id != '' AND api_message_id != '' AND input_tokens IS NOT NULL AND "
            "input_tokens + output_tokens + cache_creation_input_tokens "
            "+ cache_read_input_tokens > 0")}
    counted = [r for r in responses if r.agent == "claude_code" and r.request_id]
    assert stored <= {r.api_message_id for r in counted}, "a stored response was not counted"
    extra = [r for r in counted if r.api_message_id not in stored]
    assert extra and all(r.embedded for r in extra), \
        "the only responses not stored as lines of their own are agent_progress copies"
    kinds = ("input_tokens", "output_tokens", "cache_creation_tokens", "cache_read_tokens",
             "messages", "unpriced_messages")
    totals = {}
    for by in accounting.GROUPINGS:
        rows = usage_report(responses, TABLE, usage_query(by, timezone_name="UTC"))
        assert len({r["period"] for r in rows}) == len(rows)
        totals[by] = (tuple(sum(r[k] for r in rows) for k in kinds),
                      math.fsum(r["cost_usd"] for r in rows))
    (tokens, cost), *others = totals.values()
    assert tokens[4] == len(responses)
    for other_tokens, other_cost in others:
        assert other_tokens == tokens and other_cost == pytest.approx(cost, rel=1e-12)
    assert tokens[0] > 0 and cost > 0
