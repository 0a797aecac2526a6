"""Read-only connections and the small thread pool that uses them.

Queries block, so they run in threads; each thread borrows one pooled read-only connection
(`open_readonly`) for the length of one call. WAL lets them read while the writer commits.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, TypeVar

from sqlalchemy import Connection

from threadline.storage.errors import StoreClosed
from threadline.storage.readonly import open_readonly

T = TypeVar("T")


class ReadPool:
    def __init__(self, db_path: Path, size: int):
        size = max(1, size)
        self._engine = open_readonly(db_path, pool_size=size)
        self._executor = ThreadPoolExecutor(max_workers=size, thread_name_prefix="store-read")
        self._closed = False

    async def call(self, fn: Callable[..., T], *args: Any) -> T:
        """Run `fn(conn, *args)` on a read-only connection in the pool's threads."""
        if self._closed:
            raise StoreClosed("the store is stopped")
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._executor, self._run, fn, args)

    def _run(self, fn: Callable[..., T], args: tuple) -> T:
        conn: Connection
        with self._engine.connect() as conn:
            return fn(conn, *args)

    def close(self) -> None:
        self._closed = True
        self._executor.shutdown(wait=True, cancel_futures=True)
        self._engine.dispose()
