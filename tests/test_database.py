"""The Database object: a path or a URL chooses the backend; what differs between them."""

from __future__ import annotations

import asyncio
from pathlib import Path

import psycopg
import pytest
from sqlalchemy import select
from store_support import batch, message, running_store, write

from services.store import rows
from services.store.writer import Writer
from threadline import auth, config
from threadline.storage import dialect, messages, parse_errors, schema
from threadline.storage.database import Database
from threadline.storage.errors import DatabaseMissing, WriterActive
from threadline.storage.readonly import open_readonly


def test_a_path_is_sqlite_and_a_url_postgresql(tmp_path):
    url = "postgresql://me:secret@db.example:5432/threadline"
    settings = config.resolve({"db": url}, environ={})
    assert settings.db == url  # kept as it is, not made a path
    assert config.resolve({}, environ={"THREADLINE_DB": url}).db == url
    assert config.resolve({"db": "~/t.db"}, environ={}).db == Path.home() / "t.db"
    on_server = Database(url)
    assert not on_server.is_sqlite and on_server.url.drivername == "postgresql+psycopg"
    assert "secret" not in str(on_server)  # what logs and messages show
    assert Database(tmp_path / "t.db").is_sqlite
    assert Database(f"sqlite:///{tmp_path}/u.db").path == tmp_path / "u.db"
    with pytest.raises(ValueError, match="unsupported database URL"):
        Database("mysql://localhost/x")
    # Every command takes either (not a path made of the URL's text).
    from cli.main import build_parser

    args = build_parser().parse_args(["projects", "--db", url])
    assert config.resolve({"db": args.db}, environ={}).db == url
    # The token of an installation whose database is on a server stays in the data folder.
    assert auth.token_path(url) == config.default_db({}).parent / auth.TOKEN_FILE
    assert auth.token_path(tmp_path / "t.db") == tmp_path / auth.TOKEN_FILE


def test_a_second_writer_of_one_postgresql_database_is_refused(postgres_url):
    first, second = Writer(postgres_url), Writer(postgres_url)
    first.start()
    try:
        with pytest.raises(WriterActive, match="in use by another threadline store"):
            second.start()
    finally:
        first.stop()
    second = Writer(postgres_url)
    second.start()  # the lock went with the first writer's connection
    second.stop()


def test_reads_wait_for_the_store_to_create_its_tables(postgres_url):
    with pytest.raises(DatabaseMissing):
        Database(postgres_url).read_engine()
    writer = Writer(postgres_url)
    writer.start()
    writer.stop()
    database = Database(postgres_url)
    with database.read_engine().connect() as conn:
        assert conn.scalar(select(schema.changes.c.seq)) is None
        # Read-only connections: a write is refused by the server.
        with pytest.raises(Exception, match="read-only transaction"):
            conn.execute(schema.changes.delete())
    database.close()


def test_text_with_a_nul_character_is_stored_on_both(database_url):
    """PostgreSQL's text cannot hold NUL: the character becomes U+FFFD there, the raw line
    keeps its bytes, and the batch is stored instead of failing at every resend."""
    raw = b'{"uuid":"n1","text":"a\\u0000b"}'

    async def main():
        async with running_store(database_url) as (_run, stub):
            (ack,) = await write(stub, [batch(1, [message("n1", text="a\x00b", raw=raw)],
                                              offset=100)])
            assert ack.new_messages == 1
        engine = open_readonly(database_url)
        with engine.connect() as conn:
            (record,) = list(messages.iter_export(conn))
        engine.dispose()
        return record

    record = asyncio.run(main())
    expected = "a\x00b" if Database(database_url).is_sqlite else "a\ufffdb"
    assert record["text"] == expected


def test_contains_takes_wildcards_and_case_literally(database_url):
    """`errors --path` finds a path by a piece of it: "%" and "_" are no wildcards, and
    case counts, on both backends."""
    paths = ["/t/100%_done.jsonl", "/t/100x done.jsonl", "/T/upper.jsonl"]

    async def main():
        async with running_store(database_url) as (_run, stub):
            for n, path in enumerate(paths):
                b = batch(n + 1, [message(f"k{n}", path=path)], path=path, offset=10)
                b.chunks[0].errors.add().CopyFrom(rows_error(path))
                await write(stub, [b])
        engine = open_readonly(database_url)
        with engine.connect() as conn:
            found = {q: [e["path"] for e in parse_errors.parse_errors(conn, path=q)]
                     for q in ("%_", "/t/", "/T/")}
        engine.dispose()
        return found

    found = asyncio.run(main())
    assert found == {"%_": ["/t/100%_done.jsonl"],
                     "/t/": ["/t/100%_done.jsonl", "/t/100x done.jsonl"],
                     "/T/": ["/T/upper.jsonl"]}


def rows_error(path: str):
    from threadline.v1 import common_pb2 as pb

    return pb.ParseError(source=pb.SourcePosition(path=path, byte_offset=0, line_number=1,
                                                  byte_length=3),
                         reason="invalid_json", detail="bad", excerpt=b"{x", project_key="p")


def test_storage_conditions_of_postgresql_are_write_failures_not_batch_faults():
    full = psycopg.errors.DiskFull("could not extend file: No space left on device")
    assert dialect.storage_failure(full, "db") == (
        "could not extend file: No space left on device at db")
    assert dialect.storage_failure(psycopg.errors.UniqueViolation("duplicate key"), "db") is None


def test_write_functions_number_rows_gap_free_after_a_failed_batch(database_url):
    """A batch that fails half-way hands its sequence numbers out again: the next batch
    continues right after the last committed one (the change feed has no gap)."""

    async def main():
        writer = Writer(database_url)
        await asyncio.to_thread(writer.start)
        try:
            ok = await writer.submit(rows.write_batch(batch(1, [message("a")], offset=10), {}))
            # Two messages, the second with a NULL where the schema wants text: it fails
            # after the first was numbered.
            bad = rows.write_batch(batch(2, [message("b"), message("c")], offset=20), {})
            bad.messages[1]["uuid"] = None
            with pytest.raises(Exception, match="(?i)null"):
                await writer.submit(bad)
            after = await writer.submit(rows.write_batch(batch(3, [message("d")],
                                                               offset=30), {}))
        finally:
            await asyncio.to_thread(writer.stop)
        return ok, after

    ok, after = asyncio.run(main())
    assert ok.new_messages == [(0, 1)] and after.new_messages == [(0, 2)]
