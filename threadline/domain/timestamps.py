"""Reading transcript timestamps: the one parser every layer uses.

Transcripts write ISO-8601 with `Z` or an offset, and 3, 6 or 7 fractional digits; a timestamp
that names no offset is read as UTC (what every format here means by it).
"""

from __future__ import annotations

from datetime import UTC, datetime


def parse_timestamp(value: str) -> datetime | None:
    """An ISO-8601 timestamp as an aware datetime (UTC when it names no offset), or None.
    Any number of fractional digits is accepted (some writers use 6, or 7)."""
    text = value.strip()
    if not text:
        return None
    if text.endswith(("Z", "z")):
        text = text[:-1] + "+00:00"
    head, dot, rest = text.partition(".")
    if dot:
        digits = len(rest) - len(rest.lstrip("0123456789"))
        text = f"{head}.{rest[:min(digits, 6)].ljust(6, '0')}{rest[digits:]}"
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        return None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)
