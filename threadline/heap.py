"""Handing freed heap memory back to the operating system (glibc's `malloc_trim`).

A bulk import makes every service allocate and free hundreds of megabytes of short-lived
objects (batches, rows, records, their strings). glibc keeps the freed heap pages for reuse
and returns them only when the top of the heap is free, so a service that went through a
burst stays that large long after it: measured, the store held 40 MB more after an import
than before it, of which `malloc_trim(0)` returned most. Called every `TRIM_SECONDS` it costs
a millisecond or two (it walks the free lists). Elsewhere than glibc (macOS, musl) there is
nothing to call and this does nothing.
"""

from __future__ import annotations

import asyncio
import ctypes
import ctypes.util
import logging

log = logging.getLogger(__name__)
TRIM_SECONDS = 2.0


def _malloc_trim():
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        return libc.malloc_trim
    except (OSError, AttributeError):
        return None


_TRIM = _malloc_trim()


def trim() -> bool:
    """Return freed heap pages to the OS now; False where malloc_trim does not exist."""
    if _TRIM is None:
        return False
    _TRIM(0)
    return True


async def trim_periodically(seconds: float = TRIM_SECONDS) -> None:
    """Trim every `seconds` until cancelled (a task of each service process)."""
    if _TRIM is None:
        return
    while True:
        await asyncio.sleep(seconds)
        # In a thread: it holds the allocator's lock, not the interpreter's.
        await asyncio.to_thread(trim)
