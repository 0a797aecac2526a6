"""Freed heap memory goes back to the operating system (threadline/heap.py)."""

from __future__ import annotations

import psutil
import pytest

from threadline import heap


@pytest.mark.skipif(heap._TRIM is None, reason="no malloc_trim here (not glibc)")
def test_trim_returns_the_freed_holes_of_a_fragmented_heap():
    # 1 KB objects come from malloc's heap; keeping every 16th leaves it full of free holes
    # that glibc keeps (the heap's top is still in use), as after a burst of batches.
    blocks = [bytes(1024) + i.to_bytes(4, "little") for i in range(160_000)]
    kept = blocks[::16]
    del blocks
    process = psutil.Process()
    before = process.memory_info().rss
    assert heap.trim()
    after = process.memory_info().rss
    assert before - after > 80 * 2**20, (before, after)
    assert len(kept) == 10_000
