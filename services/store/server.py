"""Starting and stopping the store service: `start(settings)` -> Running."""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass

from services.store.changefeed import ChangeFeed
from services.store.reader import ReadPool
from services.store.servicer import StoreServicer
from services.store.writer import Checkpointer, Writer
from threadline import auth, bootstrap, dblock, lifeline
from threadline.config import Settings
from threadline.storage.database import Database
from threadline.v1 import store_pb2, store_pb2_grpc

log = logging.getLogger(__name__)

SERVICE_NAME = store_pb2.DESCRIPTOR.services_by_name["StoreService"].full_name
# Write streams end on their own at stop (end_writes), and follow streams are closed with the
# feed, so little is left for the grace period.
STOP_GRACE_SECONDS = 2.0


@dataclass
class Running:
    port: int
    service: bootstrap.Service
    servicer: StoreServicer
    writer: Writer
    checkpointer: Checkpointer
    reads: ReadPool
    feed: ChangeFeed
    lock: dblock.DatabaseLock

    async def stop(self) -> None:
        """Stop serving: end follow streams and Write streams (after acking what they took),
        stop the server, then commit what is queued and close the database."""
        self.feed.close()
        self.servicer.end_writes()
        await self.service.stop(STOP_GRACE_SECONDS)
        # The checkpointer first: the writer's last act is to truncate the WAL.
        await asyncio.to_thread(self.checkpointer.stop)
        await asyncio.to_thread(self.writer.stop)
        await asyncio.to_thread(self.reads.close)
        self.lock.release()


async def start(settings: Settings) -> Running:
    # The one writer of this database (dblock.py): refuse at once if another store, import or
    # reparse has it, before anything is opened.
    database = Database(settings.db)
    # On SQLite: refuse at once if another store, import or reparse has the file. PostgreSQL
    # has no file here to lock (acquire takes nothing): the writer's connection takes an
    # advisory lock instead, which holds against stores on other machines too.
    lock = dblock.acquire(settings.db, "threadline store", held_by_parent=lifeline.parent())
    writer = Writer(database, wal_limit_bytes=settings.wal_limit_mb * 1024 * 1024)
    try:
        await asyncio.to_thread(writer.start)  # creates the file and schema before readers open it
    except BaseException:
        lock.release()
        raise
    checkpointer = Checkpointer(database, writer=writer)
    checkpointer.start()
    reads = ReadPool(database, settings.read_pool)
    feed = ChangeFeed(settings.subscriber_queue)
    servicer = StoreServicer(writer, feed, reads, pricing_file=settings.pricing_file)
    writer.on_commit = servicer.on_commit
    writer.on_condition = feed.set_condition
    try:
        service = await bootstrap.create_server(
            [lambda server: store_pb2_grpc.add_StoreServiceServicer_to_server(servicer, server)],
            [SERVICE_NAME], host=settings.host, port=settings.port,
            security=auth.for_server(settings))
    except BaseException:
        await asyncio.to_thread(writer.stop)
        await asyncio.to_thread(checkpointer.stop)
        reads.close()
        lock.release()
        raise
    log.info("store serving on %s:%d, database %s", settings.host, service.port, database)
    return Running(service.port, service, servicer, writer, checkpointer, reads, feed,
                   lock)
