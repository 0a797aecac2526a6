"""Exceptions of the storage layer and the store service.

    StoreError                  root: anything the store refuses or fails to do
    ├── InvalidArgument         a request the store cannot act on (bad limit, negative sequence)
    ├── NotFound                a session (or other named thing) that is not stored
    ├── StoreClosed             the store is shutting down or stopped; retry against a new one
    ├── EarlierBatchFailed      a Write batch refused because an earlier batch of the same
    │                           stream failed; resend from the acknowledged offsets
    ├── StaleAnalysis           an analysis batch that does not follow the stored checkpoint
    │                           (another follower got there first); start from the checkpoint
    ├── SubscriberTooSlow       a change subscriber whose queue overflowed; it resumes without
    │                           loss by subscribing again from the last sequence it received
    ├── DatabaseMissing         a read of a database that does not exist yet (no file, or
    │                           no store tables in PostgreSQL)
    ├── WriteFailed             the database could not be written (disk full, I/O error):
    │                           nothing of the batch is stored; send it again later
    └── WriterActive            another store writes this PostgreSQL database already

These carry no gRPC: `servicer.py` maps them to status codes, in one table.
"""

from __future__ import annotations


class StoreError(Exception):
    """Root of every error the store raises on purpose."""


class InvalidArgument(StoreError):
    pass


class NotFound(StoreError):
    pass


class StoreClosed(StoreError):
    pass


class EarlierBatchFailed(StoreError):
    def __init__(self, batch_id: int):
        super().__init__(f"batch {batch_id} not written: an earlier batch of this Write stream "
                         "failed; resend from the acknowledged offsets")
        self.batch_id = batch_id


class StaleAnalysis(StoreError):
    def __init__(self, expected: int, stored: int):
        super().__init__(f"analysis batch follows checkpoint {expected}, but the stored one is "
                         f"{stored}: read again from the checkpoint")


class SubscriberTooSlow(StoreError):
    def __init__(self, queued: int, limit: int):
        super().__init__(f"change subscriber fell {queued} changes behind (limit {limit}); "
                         "subscribe again from the last sequence received")
        self.queued = queued
        self.limit = limit


class DatabaseMissing(StoreError):
    def __init__(self, path: object):
        super().__init__(f"no threadline database at {path}")
        self.path = path


class WriteFailed(StoreError):
    """The storage refused a write ("database or disk is full at <path>"): a condition of the
    machine, not of the batch, which is to be sent again once it is resolved."""


class WriterActive(StoreError):
    """Another store writes this database already (PostgreSQL's advisory writer lock is
    taken): one database has one writer, whichever machine it runs on."""

    def __init__(self, where: str):
        super().__init__(f"database {where} is in use by another threadline store; stop it "
                         "or use another --db")
        self.where = where
