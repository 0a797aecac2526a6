"""The parser alone against a bare `orjson.loads`, over the same lines in the same run.

Both passes run three times, interleaved (bare, parser, bare, parser, ...), and each keeps
its best time: the machine's speed drifts over minutes, and interleaving exposes both passes
to the same drift. The parser pass includes building each line's `Position`, as the tailer
does; neither pass touches the filesystem.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import orjson

from services.ingest.parser import parse_line
from threadline.domain.records import Position

REPEATS = 3


@dataclass(frozen=True)
class ParseRates:
    lines: int
    bare_per_s: float
    parser_per_s: float

    @property
    def ratio(self) -> float:
        return self.parser_per_s / self.bare_per_s


def lines_of(files: Sequence[Path]) -> list[bytes]:
    return [line for f in files for line in f.read_bytes().split(b"\n") if line.strip()]


def _bare(lines: Sequence[bytes]) -> float:
    loads = orjson.loads
    started = time.perf_counter()
    for line in lines:
        try:
            loads(line)
        except orjson.JSONDecodeError:
            pass
    return time.perf_counter() - started


def _parser(lines: Sequence[bytes]) -> float:
    started = time.perf_counter()
    for number, line in enumerate(lines, 1):
        parse_line(line, Position("bench.jsonl", 0, number, len(line)))
    return time.perf_counter() - started


def measure(lines: Sequence[bytes]) -> ParseRates:
    bare = parser = float("inf")
    for _ in range(REPEATS):
        bare = min(bare, _bare(lines))
        parser = min(parser, _parser(lines))
    return ParseRates(len(lines), len(lines) / bare, len(lines) / parser)
