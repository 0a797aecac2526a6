"""Token and cost accounting: stored records -> billable responses -> totals per period.

Plain functions over the row dicts `usage.usage_rows` yields (in sequence order); nothing
here knows about SQL or gRPC (`usage.usage` reads the rows and hands them here). Totals are
computed when asked, from the stored figures, so a changed pricing table applies to
everything already stored.

Which stored lines are one billable API response, and which line's figures count, is
threadline/domain/billing.py's rule (`billable_responses`), the one the tool report's subagent cost
uses too; docs/accounting.md states it.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta, tzinfo
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from threadline.domain.billing import Response, billable_responses
from threadline.domain.records import CLAUDE_CODE, CODEX, GEMINI
from threadline.domain.timestamps import parse_timestamp
from threadline.storage.errors import InvalidArgument
from threadline.storage.pricing import PricingTable

# `--agent` names and the source formats they select.
AGENTS = {"claude": CLAUDE_CODE, "codex": CODEX, "gemini": GEMINI}
TIME_GROUPINGS = ("day", "week", "month")
GROUPINGS = (*TIME_GROUPINGS, "session", "project", "model")
NO_TIMESTAMP = "(no timestamp)"
NO_MODEL = "(unknown model)"


# --- query parameters ----------------------------------------------------------------------

@dataclass(frozen=True)
class UsageQuery:
    by: str = "day"
    since: date | None = None
    until: date | None = None
    # None: the machine's local time zone, DST included (datetime.astimezone()).
    tz: tzinfo | None = None
    tz_name: str = ""
    agent: str = ""  # a source format, "" for every agent

    @property
    def formats(self) -> tuple[str, ...]:
        """The source formats to read (empty: all)."""
        return (self.agent,) if self.agent else ()


def parse_date(value: str, what: str) -> date:
    text = value.strip()
    for fmt in ("%Y-%m-%d", "%Y%m%d"):
        try:
            return datetime.strptime(text, fmt).date()
        except ValueError:
            pass
    raise InvalidArgument(f"{what}: expected YYYY-MM-DD (or YYYYMMDD), not {value!r}")


def usage_query(by: str = "day", since: str = "", until: str = "", timezone_name: str = "",
                agent: str = "") -> UsageQuery:
    """Validate and convert the parameters of a usage report (strings, as flags and RPC
    fields carry them); InvalidArgument says what is wrong."""
    if by not in GROUPINGS:
        raise InvalidArgument(f"by: expected one of {', '.join(GROUPINGS)}, not {by!r}")
    tz: tzinfo | None = None
    if timezone_name:
        try:
            tz = ZoneInfo(timezone_name)
        except (ZoneInfoNotFoundError, ValueError) as exc:
            raise InvalidArgument(f"timezone: unknown IANA time zone {timezone_name!r}") from exc
    fmt = ""
    if agent:
        if agent not in AGENTS:
            raise InvalidArgument(f"agent: expected one of {', '.join(AGENTS)}, not {agent!r}")
        fmt = AGENTS[agent]
    first = parse_date(since, "since") if since else None
    last = parse_date(until, "until") if until else None
    if first and last and first > last:
        raise InvalidArgument(f"since ({first}) is after until ({last})")
    return UsageQuery(by=by, since=first, until=last, tz=tz, tz_name=timezone_name, agent=fmt)


# --- responses -> totals -------------------------------------------------------------------

def _placed(timestamp: str, tz: tzinfo | None) -> tuple[datetime | None, date | None]:
    """(the moment in UTC, its date in `tz`, local time when None) of a timestamp, or
    (None, None) when it cannot be read or one of those falls outside the years 1..9999
    (`0001-01-01T00:00:00Z` is valid but has no date west of UTC)."""
    moment = parse_timestamp(timestamp)
    if moment is None:
        return None, None
    try:
        local = moment.astimezone(tz) if tz is not None else moment.astimezone()
        return moment.astimezone(UTC), local.date()
    except OverflowError:
        return None, None


def period_of(by: str, day: date | None, response: Response) -> tuple[str, str]:
    """(period, start date or "") of a response under a grouping."""
    if by in TIME_GROUPINGS:
        if day is None:
            return NO_TIMESTAMP, ""
        if by == "day":
            return day.isoformat(), day.isoformat()
        if by == "week":  # ISO 8601 weeks: Monday to Sunday, numbered within the ISO year
            iso = day.isocalendar()
            return f"{iso.year}-W{iso.week:02d}", (day - timedelta(days=day.weekday())).isoformat()
        return f"{day.year:04d}-{day.month:02d}", day.replace(day=1).isoformat()
    if by == "session":
        return response.session_id, ""
    if by == "project":
        return response.project_key, ""
    return response.model or NO_MODEL, ""


@dataclass
class _Totals:
    period: str
    start: str = ""
    input_tokens: int = 0
    output_tokens: int = 0
    cache_creation_tokens: int = 0
    cache_read_tokens: int = 0
    costs: list[float] = field(default_factory=list)
    messages: int = 0
    unpriced_messages: int = 0
    long_context_messages: int = 0
    models: set[str] = field(default_factory=set)
    unpriced_models: set[str] = field(default_factory=set)
    agents: set[str] = field(default_factory=set)
    first: datetime | None = None
    last: datetime | None = None

    def add(self, response: Response, moment: datetime | None, pricing: PricingTable) -> None:
        self.input_tokens += response.input_tokens
        self.output_tokens += response.output_tokens
        self.cache_creation_tokens += response.cache_creation_tokens
        self.cache_read_tokens += response.cache_read_tokens
        self.messages += 1
        self.models.add(response.model or NO_MODEL)
        self.agents.add(response.agent)
        cost = pricing.cost(
            response.model, input_tokens=response.input_tokens,
            output_tokens=response.output_tokens,
            cache_creation_tokens=response.cache_creation_tokens,
            cache_creation_5m_tokens=response.cache_creation_5m_tokens,
            cache_creation_1h_tokens=response.cache_creation_1h_tokens,
            cache_read_tokens=response.cache_read_tokens)
        if cost.priced:
            self.costs.append(cost.usd)
            self.long_context_messages += cost.long_context
        else:
            self.unpriced_messages += 1
            self.unpriced_models.add(response.model or NO_MODEL)
        if moment is not None:
            self.first = moment if self.first is None else min(self.first, moment)
            self.last = moment if self.last is None else max(self.last, moment)

    def row(self, by: str) -> dict:
        out = {
            "period": self.period,
            "input_tokens": self.input_tokens,
            "output_tokens": self.output_tokens,
            "cache_creation_tokens": self.cache_creation_tokens,
            "cache_read_tokens": self.cache_read_tokens,
            "total_tokens": (self.input_tokens + self.output_tokens
                             + self.cache_creation_tokens + self.cache_read_tokens),
            "cost_usd": math.fsum(self.costs),
            "messages": self.messages,
            "unpriced_messages": self.unpriced_messages,
            "unpriced_models": sorted(self.unpriced_models),
            "long_context_messages": self.long_context_messages,
            "models": sorted(self.models),
            "agents": sorted(self.agents),
            "first_timestamp": _iso(self.first),
            "last_timestamp": _iso(self.last),
        }
        if by in ("week", "month") and self.start:
            out["start"] = self.start
        return out


def _iso(moment: datetime | None) -> str:
    if moment is None:
        return ""
    return moment.isoformat(timespec="milliseconds").replace(
        "+00:00", "Z")


def usage_report(responses: Iterable[Response], pricing: PricingTable,
                 query: UsageQuery = UsageQuery()) -> list[dict]:
    """Totals of the responses per period of `query.by`, with cost under `pricing`.

    Dates are the response timestamps in `query.tz` (local time when None); `since`/`until`
    (inclusive) select responses by that date, so a response without a readable timestamp
    (or one with no date in that zone) is left out when either is given. Time periods come
    in order; sessions, projects and models in the order of their last activity.
    """
    groups: dict[str, _Totals] = {}
    for response in responses:
        if query.agent and response.agent != query.agent:
            continue
        moment, day = _placed(response.timestamp, query.tz)
        if query.since or query.until:
            if day is None or (query.since and day < query.since) or (
                    query.until and day > query.until):
                continue
        period, start = period_of(query.by, day, response)
        totals = groups.get(period)
        if totals is None:
            totals = groups[period] = _Totals(period, start)
        totals.add(response, moment, pricing)
    ordered = list(groups.values())
    if query.by in TIME_GROUPINGS:
        ordered.sort(key=lambda t: (t.period == NO_TIMESTAMP, t.period))
    else:
        never = datetime.min.replace(tzinfo=UTC)
        ordered.sort(key=lambda t: (t.last or never, t.period))
    return [t.row(query.by) for t in ordered]


def report(rows: Iterable[dict], pricing: PricingTable, query: UsageQuery) -> list[dict]:
    """Stored rows (sequence order) -> billable responses -> totals per period."""
    return usage_report(billable_responses(rows), pricing, query)


def total_row(rows: list[dict]) -> dict:
    """The sum of report rows (as `usage_report` returns them), as one row named "total"."""
    out = {"period": "total"}
    for key in ("input_tokens", "output_tokens", "cache_creation_tokens", "cache_read_tokens",
                "total_tokens", "messages", "unpriced_messages", "long_context_messages"):
        out[key] = sum(r[key] for r in rows)
    out["cost_usd"] = math.fsum(r["cost_usd"] for r in rows)
    for key in ("models", "unpriced_models", "agents"):
        out[key] = sorted({name for r in rows for name in r[key]})
    stamps = [r[k] for r in rows for k in ("first_timestamp", "last_timestamp") if r[k]]
    out["first_timestamp"] = min(stamps, default="")
    out["last_timestamp"] = max(stamps, default="")
    return out


@dataclass(frozen=True)
class UsageReport:
    """A usage report: one row per period, their total, and the date of the price table."""

    rows: list[dict]
    total: dict
    pricing_date: str
