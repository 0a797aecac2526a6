"""Aligned plain-text tables for the CLI's human output."""

from __future__ import annotations

from collections.abc import Sequence


def render(head: Sequence[str], rows: Sequence[Sequence[object]], right: Sequence[int] = (),
           max_width: int = 60) -> str:
    """Columns padded to their widest cell (cut at `max_width` with "…"); the columns whose
    index is in `right` are right-aligned (numbers)."""
    def cell(value: object) -> str:
        text = " ".join(str(value).split())
        return text if len(text) <= max_width else text[:max_width - 1] + "…"

    body = [[cell(v) for v in row] for row in rows]
    header = [str(h) for h in head]
    widths = [max(len(line[i]) for line in [header, *body]) for i in range(len(header))]
    aligned = set(right)

    def fmt(line: list[str]) -> str:
        return "  ".join(c.rjust(w) if i in aligned else c.ljust(w)
                         for i, (c, w) in enumerate(zip(line, widths, strict=True))).rstrip()

    return "\n".join(fmt(line) for line in [header, *body])
