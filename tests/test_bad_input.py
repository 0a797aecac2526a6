"""Bad input, end to end: each line that cannot become a record is a stored parse error at its
exact place, saying why; every good line around it is stored intact.

The files are imported by the real pipeline (`threadline import`) and read back from the
database, both through the store's query functions and through `threadline errors --json`.
"""

from __future__ import annotations

import json
import random
import subprocess
import sys
import threading
from dataclasses import dataclass
from pathlib import Path

import orjson
import pytest

from services.ingest.parser import EXCERPT_BYTES, parse_line
from services.ingest.tailer import FileTail
from threadline.domain.records import LineError, Position
from threadline.storage.messages import iter_export
from threadline.storage.parse_errors import parse_errors
from threadline.storage.readonly import open_readonly

SESSION = "7a0c5e1e-0000-4000-8000-00000000bad1"
BIG = 21 * 1024 * 1024  # lines of tens of megabytes (real ones reach ~1 MB: base64 images)


def good(uid: str, text: str = "hello", **fields) -> bytes:
    return orjson.dumps({"parentUuid": None, "isSidechain": False, "type": "user",
                         "sessionId": SESSION, "cwd": "/home/u/app", "version": "2.1.39",
                         "uuid": uid, "timestamp": "2026-03-01T10:00:00.000Z",
                         "message": {"role": "user", "content": text}, **fields})


@dataclass
class Line:
    raw: bytes  # without its newline
    uuid: str = ""  # a good line: the record it must become
    reason: str = ""  # a bad line: the parse error it must become
    blank: bool = False  # neither (but still counted in line numbers)


def mixed_lines() -> list[Line]:
    deep = b"[" * 5000 + b"]" * 5000
    junk = bytes(b for b in random.Random(7).randbytes(300) if b != 0x0A) + b"\xff"
    return [
        Line(good("g-1"), uuid="g-1"),
        Line(b'{"type": "user", "uuid": "b-1", oops}', reason="invalid_json"),
        Line(good("g-2", "caf\u00e9 \u2603 \U0001f600 \u202e"), uuid="g-2"),
        Line(good("g-big", "A" * BIG), uuid="g-big"),
        Line(b"", blank=True),
        Line(b'{"type":"user","uuid":"b-big","message":{"role":"user","content":"'
             + b"B" * BIG + b'"}', reason="invalid_json"),
        Line(good("g-3"), uuid="g-3"),
        Line(b'{"type":"user","uuid":"b-latin1","message":{"content":"caf\xe9"}}',
             reason="invalid_utf8"),
        # Lone surrogates: as an escape (orjson refuses to build the string) and as the
        # UTF-8-style bytes of one (not UTF-8 at all).
        Line(b'{"type":"user","uuid":"b-esc","message":{"content":"\\ud800 x"}}',
             reason="invalid_json"),
        Line(b'{"type":"user","uuid":"b-sur","message":{"content":"\xed\xa0\x80"}}',
             reason="invalid_utf8"),
        # Wrong types inside a well-formed object are a record, not an error.
        Line(b'{"type":"user","uuid":"g-num","sessionId":"' + SESSION.encode()
             + b'","timestamp":1700000000,"cwd":42,"isSidechain":"no",'
             b'"message":{"role":7,"content":12345}}', uuid="g-num"),
        Line(b'{"type":"assistant","uuid":"g-arr","message":["not","an","object"],'
             b'"parentUuid":{"a":1}}', uuid="g-arr"),
        Line(b'{"type":"user","uuid":"g-obj","message":{"role":"user",'
             b'"content":{"type":"text","text":"an object, not a list"}}}', uuid="g-obj"),
        Line(b'[{"type":"user","uuid":"b-arr"}]', reason="not_an_object"),
        Line(b'"just a string"', reason="not_an_object"),
        Line(b"42", reason="not_an_object"),
        Line(b"null", reason="not_an_object"),
        Line(b'{"type":"user","uuid":"b-deep","message":' + deep + b"}", reason="too_deep"),
        Line(b'{"type":"user","uuid":"g-deep","x":' + b"[" * 100 + b"]" * 100 + b"}",
             uuid="g-deep"),
        Line(b"  ", blank=True),
        Line(b" \t" * 8 + b"\r", blank=True),
        Line(junk, reason="invalid_utf8"),
        Line(b"\x00\x00\x00\x00\x00\x00", reason="invalid_json"),
        Line(b'{"type":"user","uuid":"b-tail"} and more', reason="invalid_json"),
        Line(b"\xef\xbb\xbf" + good("b-bom"), reason="invalid_json"),
        Line(good("g-crlf") + b"\r", uuid="g-crlf"),
        Line(good("g-4"), uuid="g-4"),
        # Cut off mid-write: no newline, not valid JSON.
        Line(b'{"type":"user","uuid":"b-cut","message":{"role":"us', reason="truncated_tail"),
    ]


def write_file(path: Path, lines: list[Line]) -> list[tuple[Line, int, int]]:
    """Write the lines (the last one without a newline); each with its line number and
    byte offset, counted independently of threadline."""
    placed, offset = [], 0
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("wb") as out:
        for number, line in enumerate(lines, start=1):
            last = number == len(lines)
            out.write(line.raw if last else line.raw + b"\n")
            placed.append((line, number, offset))
            offset += len(line.raw) + 1
    return placed


def threadline(*args: str) -> bytes:
    return subprocess.run([sys.executable, "-m", "cli", *args], capture_output=True,
                          timeout=300, check=True).stdout


@pytest.fixture(scope="module")
def imported(tmp_path_factory):
    base = tmp_path_factory.mktemp("bad")
    project = base / "projects" / "-home-u-app"
    mixed = project / f"{SESSION}.jsonl"
    placed = write_file(mixed, mixed_lines())
    (project / "empty.jsonl").write_bytes(b"")
    (project / "blank.jsonl").write_bytes(b"\n\n  \n")
    binary = random.Random(11).randbytes(64 * 1024)
    (project / "binary.jsonl").write_bytes(binary)
    db = base / "t.db"
    summary = json.loads(threadline("import", "--db", str(db), "--json",
                                    str(base / "projects")).splitlines()[-1])
    engine = open_readonly(db)
    with engine.connect() as conn:
        records = list(iter_export(conn, include_raw=True))
        errors = parse_errors(conn, None)
    engine.dispose()
    return {"db": db, "mixed": str(mixed), "placed": placed, "binary": binary,
            "binary_path": str(project / "binary.jsonl"), "summary": summary,
            "records": records, "errors": errors}


def test_every_good_line_is_stored_exactly(imported):
    placed = [(line, n, off) for line, n, off in imported["placed"] if line.uuid]
    stored = {r["uuid"]: r for r in imported["records"] if r["source"]["path"] == imported["mixed"]}
    assert sorted(stored) == sorted(line.uuid for line, _, _ in placed)
    for line, number, offset in placed:
        r = stored[line.uuid]
        assert r["raw"] == line.raw, line.uuid
        assert r["source"] == {"path": imported["mixed"], "byte_offset": offset,
                               "line_number": number, "byte_length": len(line.raw)}, line.uuid
    assert len(stored["g-big"]["text"]) == BIG
    assert stored["g-2"]["text"] == "caf\u00e9 \u2603 \U0001f600 \u202e"
    # Wrong-typed fields are kept as text, not dropped: the record is still usable.
    assert stored["g-num"]["timestamp"] == "1700000000" and stored["g-num"]["cwd"] == "42"


def test_every_bad_line_is_an_error_at_its_place(imported):
    want = {(n, off): line for line, n, off in imported["placed"] if line.reason}
    got = {(e["line_number"], e["byte_offset"]): e for e in imported["errors"]
           if e["path"] == imported["mixed"]}
    assert sorted(got) == sorted(want)
    for place, line in want.items():
        e = got[place]
        assert e["byte_length"] == len(line.raw), place
        assert e["excerpt"] == line.raw[:EXCERPT_BYTES], place
        assert e["detail"], place
        assert e["project_key"] == "/home/u/app"  # the one project its folder stands for
        assert e["reason"] == line.reason, (place, line.raw[:60])


def test_reasons_are_distinct_and_named(imported):
    reasons = {e["reason"] for e in imported["errors"]}
    assert reasons >= {"invalid_json", "invalid_utf8", "not_an_object", "too_deep",
                       "truncated_tail"}
    for e in imported["errors"]:
        assert e["reason"].isidentifier() and e["reason"].islower()


def test_empty_and_blank_files_store_nothing_and_fail_nothing(imported):
    for name in ("empty.jsonl", "blank.jsonl"):
        assert not [r for r in imported["records"] if r["source"]["path"].endswith(name)]
        assert not [e for e in imported["errors"] if e["path"].endswith(name)]


def test_a_binary_file_is_all_errors(imported):
    binary, path = imported["binary"], imported["binary_path"]
    pieces = binary.split(b"\n")
    want, offset = {}, 0
    for number, piece in enumerate(pieces, start=1):
        if piece.strip():
            want[number] = offset
        offset += len(piece) + 1
    errors = [e for e in imported["errors"] if e["path"] == path]
    assert {e["line_number"]: e["byte_offset"] for e in errors} == want
    assert not [r for r in imported["records"] if r["source"]["path"] == path]
    last = max(errors, key=lambda e: e["line_number"])
    assert last["reason"] == "truncated_tail"  # the file does not end with a newline


def test_the_import_summary_counts_them(imported):
    placed = imported["placed"]
    summary = imported["summary"]
    binary_errors = sum(1 for p in imported["binary"].split(b"\n") if p.strip())
    assert summary["files"] == 4
    assert summary["messages"] == sum(1 for line, _, _ in placed if line.uuid)
    assert summary["parse_errors"] == sum(1 for line, _, _ in placed if line.reason) + binary_errors


def test_errors_command_shows_the_same(imported):
    listed = json.loads(threadline("errors", "--db", str(imported["db"]), "--json",
                                   "--path", imported["mixed"], "--limit", "0"))
    want = [(n, off, line) for line, n, off in imported["placed"] if line.reason]
    assert [(e["line_number"], e["byte_offset"]) for e in listed] == [
        (n, off) for n, off, _ in want]
    for e, (_, _, line) in zip(listed, want, strict=True):
        assert e["path"] == imported["mixed"]
        assert e["byte_length"] == len(line.raw)
        assert e["excerpt"] == line.raw[:EXCERPT_BYTES].decode("utf-8", "backslashreplace")


def test_a_too_deep_line_says_so():
    raw = b'{"type":"user","message":' + b"[" * 2000 + b"]" * 2000 + b"}"
    result = parse_line(raw, Position("/p/s.jsonl", 0, 1, len(raw)))
    assert isinstance(result, LineError) and result.reason == "too_deep"


def test_whitespace_only_lines_are_all_skipped(tmp_path):
    path = tmp_path / "s.jsonl"
    path.write_bytes(good("a") + b"\n  \n" + b" " * 8 + b"\n\t\t\t\t\t\n" + good("b") + b"\n")
    chunk = FileTail(str(path), "p", "claude_code", threading.Lock()).read(100, 1 << 20)
    assert [r.uuid for r in chunk.records] == ["a", "b"]
    assert chunk.errors == []


def test_a_chat_document_without_messages_is_not_lost():
    raw = b'{"sessionId": "s", "projectHash": "h", "startTime": "2026-01-01", "messages": []}'
    result = parse_line(raw, Position("/p/session-1.json", 0, 1, len(raw)))
    assert isinstance(result, list) and len(result) == 1
    (metadata,) = result
    assert (metadata.type, metadata.session_id, metadata.drift) == ("metadata", "s", "")


def test_a_chat_document_line_is_read_as_its_messages(tmp_path):
    # A JSON object is never junk, even the whole legacy Gemini chat on one line of a JSONL file.
    path = tmp_path / "s.jsonl"
    document = orjson.dumps({"sessionId": "s", "projectHash": "h", "messages": [
        {"id": "m1", "type": "user", "content": "hi"},
        {"id": "m2", "type": "gemini", "content": "hello"}]})
    path.write_bytes(good("a") + b"\n" + document + b"\n" + good("b") + b"\n")
    chunk = FileTail(str(path), "p", "claude_code", threading.Lock()).read(100, 1 << 20)
    # Line 2 is the document's metadata record, then its two messages.
    assert [r.source.line_number for r in chunk.records] == [1, 2, 2, 2, 3]
    assert chunk.errors == []
