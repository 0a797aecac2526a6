"""Turns at writing for every WebSocket connection, so that no client waits behind another.

One task writes for all connections. Writing one frame to a socket with room never waits, so
a task per connection would empty its whole backlog in one go while every other connection,
and the upstream feed that publishes new changes, waited; with hundreds of clients watching
everything a client watching one session saw its frames seconds late. Here each connection
gets a turn of at most `BURST` frames, and after `SLICE_SECONDS` of turns the dispatcher lets
the rest of the event loop run (the upstream first of all, so publishing never falls behind;
a connection that cannot keep up is dropped by its bounded queue, not by stalling others).

Connections that had nothing queued go before connections with a backlog, and write one frame
in that first turn: a client that is keeping up (one that gets few changes, above all) is
served as soon as its change is published, however many others are behind, and waits at most
for one frame of each other client that was also keeping up.
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from typing import Protocol

log = logging.getLogger(__name__)

# Frames one connection writes per turn.
BURST = 8
# Longest run of turns before the rest of the event loop gets to run.
SLICE_SECONDS = 0.0005


class Writer(Protocol):
    scheduled: bool

    def write_some(self, budget: int) -> bool:
        """Write up to `budget` queued frames; True if more are queued and can be written."""
        ...


class Dispatcher:
    """Gives every connection with queued frames its turn, fresh ones first."""

    def __init__(self) -> None:
        # Connections whose queue was empty when a frame arrived, and those with a backlog.
        self._fresh: deque[Writer] = deque()
        self._backlog: deque[Writer] = deque()
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="websocket-dispatcher")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)

    def schedule(self, writer: Writer, fresh: bool) -> None:
        """Give `writer` a turn (once, however often it is scheduled before it gets it)."""
        if writer.scheduled:
            return
        writer.scheduled = True
        (self._fresh if fresh else self._backlog).append(writer)
        self._wake.set()

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        fresh, backlog = self._fresh, self._backlog
        while True:
            if not fresh and not backlog:
                self._wake.clear()
                await self._wake.wait()
                continue
            deadline = loop.time() + SLICE_SECONDS
            while (fresh or backlog) and loop.time() < deadline:
                if fresh:
                    writer, budget = fresh.popleft(), 1
                else:
                    writer, budget = backlog.popleft(), BURST
                writer.scheduled = False
                try:
                    more = writer.write_some(budget)
                except Exception:
                    # A bug in one connection must not end writing for all of them.
                    log.exception("writing to a WebSocket client failed")
                    continue
                if more:
                    writer.scheduled = True
                    backlog.append(writer)
            await asyncio.sleep(0)
