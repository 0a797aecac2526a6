"""Reading what token accounting needs (accounting.py turns the rows into totals): the
rows with usage figures, and the usage report of a database."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

from sqlalchemy import Connection, and_, case, func, or_, select

from threadline.storage import accounting, pricing, schema

_m = schema.messages


# Columns token accounting reads (threadline/domain/billing.py): never the raw line, except for the
# few `progress` lines that embed a subagent's response with usage (`agent_progress`), whose
# figures live only in that line ("embedded").
_USAGE_COLUMNS = [_m.c[name] for name in (
    "seq", "type", "format", "model", "request_id", "api_message_id", "is_sidechain",
    "stop_reason", "timestamp", "session_id", "project_key", "source_path",
    "source_line_number", "input_tokens", "output_tokens", "cache_creation_input_tokens",
    "cache_creation_5m_tokens", "cache_creation_1h_tokens", "cache_read_input_tokens",
    "reasoning_output_tokens")]
_EMBEDS_USAGE = and_(_m.c.type == "progress", _m.c.input_tokens.is_(None),
                     func.instr(_m.c.raw, '"agent_progress"') > 0,
                     func.instr(_m.c.raw, '"usage":') > 0)
_EMBEDDED = case((_m.c.input_tokens.is_(None) & (_m.c.type == "progress"), _m.c.raw),
                 else_=None).label("embedded")
USAGE_PAGE = 2000


def usage_rows(conn: Connection, formats: tuple[str, ...] = (),
               page: int = USAGE_PAGE) -> Iterator[dict]:
    """The rows token accounting needs, in sequence order, page by page (keyset on seq):
    every row with usage, Codex `turn_context`/`response_item` rows (the model in effect and
    the model's output between two usage reports), and `agent_progress` lines that embed a
    response with usage (their raw line as "embedded"). `formats` limits them to some
    source formats."""
    condition = or_(_m.c.input_tokens.is_not(None),
                    and_(_m.c.format == "codex",
                         _m.c.type.in_(("turn_context", "response_item"))),
                    _EMBEDS_USAGE)
    if formats:
        condition = and_(_m.c.format.in_(formats), condition)
    after = 0
    while True:
        rows = conn.execute(select(*_USAGE_COLUMNS, _EMBEDDED)
                            .where(_m.c.seq > after, condition)
                            .order_by(_m.c.seq).limit(page)).mappings().all()
        for r in rows:
            yield dict(r)
        if len(rows) < page:
            return
        after = rows[-1]["seq"]


def usage(conn: Connection, query: accounting.UsageQuery,
          pricing_file: Path | str | None = None) -> accounting.UsageReport:
    """The usage report of a threadline database (an open read connection) for `query`,
    priced with the bundled table merged with `pricing_file`. The pricing file is read on
    every call, so an edited file applies at once; a bad one raises PricingError."""
    table = pricing.load(pricing_file)
    rows = accounting.report(usage_rows(conn, query.formats), table, query)
    return accounting.UsageReport(rows, accounting.total_row(rows), table.date)
