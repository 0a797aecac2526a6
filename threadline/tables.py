"""Aligned plain-text tables for the CLI's human output, and the escaping that keeps
transcript text from driving the terminal."""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import TextIO

# C0 controls but newline and tab, DEL, C1 controls (ESC sequences, 8-bit CSI/OSC) and the
# bidirectional overrides and isolates (text that reads differently from what it is).
_CONTROL = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069]")


def _escape(match: re.Match[str]) -> str:
    code = ord(match.group())
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}"


def printable(text: str) -> str:
    """`text` with every control character written as an escape (`\\x1b`): a session id,
    file name or message from a transcript must not move the cursor, retitle the window or
    clear the screen of whoever reads it."""
    return _CONTROL.sub(_escape, text)


class PrintableStream:
    """A text stream that passes everything written through `printable`: the CLI's stdout,
    so that no command prints a transcript's control characters, whichever way it prints."""

    def __init__(self, stream: TextIO):
        self._stream = stream

    def write(self, text: str) -> int:
        self._stream.write(printable(text))
        return len(text)

    def __getattr__(self, name: str):  # flush, buffer, isatty, encoding...
        return getattr(self._stream, name)


def render(head: Sequence[str], rows: Sequence[Sequence[object]], right: Sequence[int] = (),
           max_width: int = 60) -> str:
    """Columns padded to their widest cell (cut at `max_width` with "…"); the columns whose
    index is in `right` are right-aligned (numbers)."""
    def cell(value: object) -> str:
        text = printable(" ".join(str(value).split()))
        return text if len(text) <= max_width else text[:max_width - 1] + "…"

    body = [[cell(v) for v in row] for row in rows]
    header = [printable(str(h)) for h in head]
    widths = [max(len(line[i]) for line in [header, *body]) for i in range(len(header))]
    aligned = set(right)

    def fmt(line: list[str]) -> str:
        return "  ".join(c.rjust(w) if i in aligned else c.ljust(w)
                         for i, (c, w) in enumerate(zip(line, widths, strict=True))).rstrip()

    return "\n".join(fmt(line) for line in [header, *body])
