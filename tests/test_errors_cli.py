"""`threadline errors`: the stored parse errors, as JSON or as a table with counts by reason."""

from __future__ import annotations

import asyncio
import contextlib
import io
import json
from dataclasses import dataclass

import pytest
from store_support import batch, message, running_store, write

from cli.main import main
from threadline.v1 import common_pb2 as pb

A = "/t/proj/a.jsonl"
ODD = "/t/100%_done/b.jsonl"  # LIKE would treat % and _ as wildcards
LONG = b'{"type": "user", "text": "' + b"x" * 300


def error(path: str, line: int, offset: int, reason: str, excerpt: bytes,
          length: int | None = None) -> pb.ParseError:
    return pb.ParseError(
        source=pb.SourcePosition(path=path, byte_offset=offset, line_number=line,
                                 byte_length=len(excerpt) if length is None else length),
        reason=reason, detail=f"{reason} here", excerpt=excerpt, project_key="proj")


STORED = [
    error(A, 2, 10, "invalid_json", b"{oops"),
    error(A, 5, 80, "invalid_utf8", b"caf\xe9 \n\x00 \xe2\x98\x83"),
    error(ODD, 1, 0, "not_an_object", b"[1]"),
    error("/t/proj/c.jsonl", 9, 4000, "invalid_json", LONG[:200], length=len(LONG)),
]


@pytest.fixture(scope="module")
def db(tmp_path_factory):
    path = tmp_path_factory.mktemp("errors") / "t.db"

    async def fill():
        async with running_store(path) as (_run, stub):
            await write(stub, [
                batch(1, [message("m1")], errors=STORED[:2], path=A, offset=100),
                batch(2, errors=STORED[2:3], path=ODD, offset=4),
                batch(3, errors=STORED[3:], path="/t/proj/c.jsonl", offset=4400),
            ])

    asyncio.run(fill())
    return path


@dataclass
class Run:
    returncode: int
    stdout: bytes
    stderr: bytes


def threadline(*args: str) -> Run:
    """The command, run in this process (the same entry point as `python -m cli`)."""
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            code = main(list(args))
        except SystemExit as exc:  # argparse refusing the arguments
            code = exc.code
    return Run(code, out.getvalue().encode(), err.getvalue().encode())


def listed(db, *args: str) -> list[dict]:
    result = threadline("errors", "--db", str(db), "--json", *args)
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


def test_json_lists_every_error_with_its_place_and_text(db):
    found = listed(db)
    assert [(e["path"], e["line_number"]) for e in found] == [
        (A, 2), (A, 5), (ODD, 1), ("/t/proj/c.jsonl", 9)]
    assert found[1] == {"path": A, "line_number": 5, "byte_offset": 80, "byte_length": 11,
                        "reason": "invalid_utf8", "detail": "invalid_utf8 here",
                        "excerpt": "caf\\xe9 \n\x00 \u2603", "project_key": "/work"}
    assert found[3]["byte_length"] == len(LONG)
    assert found[3]["excerpt"] == LONG[:200].decode()


def test_filters_by_reason_path_and_limit(db):
    assert [e["line_number"] for e in listed(db, "--reason", "invalid_json")] == [2, 9]
    assert [e["path"] for e in listed(db, "--path", "100%_")] == [ODD]
    assert listed(db, "--path", "/T/") == [], "the path filter is case-sensitive"
    assert listed(db, "--path", "0%") and listed(db, "--path", "1_0") == []
    assert [e["line_number"] for e in listed(db, "--limit", "2")] == [2, 5]
    assert listed(db, "--reason", "invalid_json", "--path", "c.jsonl")[0]["line_number"] == 9
    assert listed(db, "--reason", "too_deep") == []


def test_table_shows_rows_and_counts_by_reason(db):
    result = threadline("errors", "--db", str(db))
    assert result.returncode == 0
    lines = result.stdout.decode().splitlines()
    assert lines[0].split() == ["LOCATION", "OFFSET", "REASON", "EXCERPT"]
    assert lines[1].split()[:4] == [f"{A}:2", "10", "invalid_json", "{oops"]
    # Control characters and bytes that are not UTF-8 are shown escaped, on one line.
    assert lines[2].endswith("caf\\xe9 \\n\\x00 \u2603")
    assert lines[4].endswith("...")
    assert lines[-1] == "4 parse errors: invalid_json 2, invalid_utf8 1, not_an_object 1"
    limited = threadline("errors", "--db", str(db), "--limit", "1").stdout.decode()
    assert limited.splitlines()[-1] == ("4 parse errors (1 shown): invalid_json 2, "
                                        "invalid_utf8 1, not_an_object 1")
    only = threadline("errors", "--db", str(db), "--reason", "not_an_object").stdout.decode()
    assert only.splitlines()[-1] == "1 parse error: not_an_object 1"


def test_a_database_without_errors(tmp_path):
    path = tmp_path / "t.db"

    async def fill():
        async with running_store(path) as (_run, stub):
            await write(stub, [batch(1, [message("m1")], offset=100)])

    asyncio.run(fill())
    assert listed(path) == []
    assert threadline("errors", "--db", str(path)).stdout.decode() == "0 parse errors\n"


def test_a_missing_database_or_bad_limit_is_refused(tmp_path):
    missing = threadline("errors", "--db", str(tmp_path / "none.db"))
    assert missing.returncode == 1 and b"no threadline database" in missing.stderr
    assert not (tmp_path / "none.db").exists()
    db = tmp_path / "x.db"
    db.write_bytes(b"")
    assert threadline("errors", "--db", str(db), "--limit", "-1").returncode == 2


def test_import_and_eval_name_the_paths_that_do_not_exist(tmp_path, capsys):
    here, gone = tmp_path, tmp_path / "gone"
    assert main(["import", str(here), str(gone)]) == 2
    assert capsys.readouterr().err.strip() == f"threadline import: no such file or folder: {gone}"
    assert main(["eval", "threading", str(gone)]) == 2
    assert capsys.readouterr().err.strip() == f"threadline eval: no such file or folder: {gone}"
