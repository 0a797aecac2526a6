"""The ingest service in a process of its own, for tests that need another user's view of the
files: started by root, it drops to `nobody` (root reads every file, whatever its mode).

Settings come from THREADLINE_* variables. Python's standard library may sit where `nobody`
cannot read it, so everything the service needs is imported before privileges are dropped.
"""

from __future__ import annotations

import asyncio
import concurrent.futures.thread  # noqa: F401  (asyncio.to_thread imports it lazily)
import os
import platform  # noqa: F401  (imported lazily by watchfiles)
import signal

from services.ingest import server
from threadline import config

NOBODY = 65534


async def serve() -> None:
    running = await server.start(config.resolve())
    stop = asyncio.Event()
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stop.set)
    print(running.port, flush=True)
    await stop.wait()
    await running.stop()


def main() -> None:
    if os.getuid() == 0:
        os.setgroups([])
        os.setgid(NOBODY)
        os.setuid(NOBODY)
    asyncio.run(serve())


if __name__ == "__main__":
    main()
