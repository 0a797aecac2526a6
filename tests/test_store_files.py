"""The store creates its data directory 0700 and the database, its WAL and shared memory 0600."""

from __future__ import annotations

import asyncio
import os
import stat

from store_support import batch, message, running_store, write


def mode(path) -> int:
    return stat.S_IMODE(os.stat(path).st_mode)


def test_a_fresh_database_and_its_folder_are_private(tmp_path):
    folder = tmp_path / "data" / "threadline"
    db = folder / "threadline.db"
    old = os.umask(0o022)  # the usual umask: files 0644, folders 0755 unless made private
    try:
        async def scenario():
            async with running_store(db) as (_run, stub):
                await write(stub, [batch(1, [message("m1")])])
                # While the store runs, its WAL and shared-memory files exist.
                return {p: mode(p) for p in (db, f"{db}-wal", f"{db}-shm")}
        modes = asyncio.run(scenario())
    finally:
        os.umask(old)
    assert mode(folder) == 0o700
    assert modes == {db: 0o600, f"{db}-wal": 0o600, f"{db}-shm": 0o600}


def test_an_existing_database_keeps_its_mode(tmp_path):
    db = tmp_path / "shared.db"
    db.touch(mode=0o640)
    os.chmod(db, 0o640)

    async def scenario():
        async with running_store(db) as (_run, stub):
            await write(stub, [batch(1, [message("m1")])])
    asyncio.run(scenario())
    assert mode(db) == 0o640
