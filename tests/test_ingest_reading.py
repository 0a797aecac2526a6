"""Ingest's domain: discovering transcripts and reading complete lines from them."""

from __future__ import annotations

import os
from pathlib import Path

import orjson

from services.ingest.discovery import Transcript, discover, project_key, transcript_at
from services.ingest.ingestor import Ingestor
from services.ingest.tailer import Durable, FileTail


def line(i: int, text: str = "") -> bytes:
    return orjson.dumps({"type": "user", "uuid": f"u{i}", "sessionId": "s1",
                         "message": {"role": "user", "content": text or f"hello {i}"}}) + b"\n"


def read_all(tail: FileTail, final: bool = False, max_lines: int = 10_000):
    records, errors, chunks = [], [], []
    while True:
        chunk = tail.read(max_lines, 1 << 30, final)
        if chunk is None:
            return records, errors, chunks
        chunks.append(chunk)
        records += chunk.records
        errors += chunk.errors


def test_discovery_finds_nested_transcripts_with_project_keys(tmp_path: Path) -> None:
    root = tmp_path / "projects"
    session = root / "-home-u-proj" / "s1"
    (session / "subagents" / "workflows" / "wf_1").mkdir(parents=True)
    files = [
        root / "-home-u-proj" / "s1.jsonl",
        session / "subagents" / "agent-a1.jsonl",
        session / "subagents" / "workflows" / "wf_1" / "journal.jsonl",
        root / "loose.jsonl",
    ]
    for f in files:
        f.write_bytes(line(1))
    (session / "tool-results").mkdir()
    (session / "tool-results" / "toolu_1.txt").write_text("output")
    other = tmp_path / "codex"
    (other / "2025" / "01").mkdir(parents=True)
    (other / "2025" / "01" / "rollout-x.jsonl").write_bytes(b"")

    found = {t.path: t for t in discover([root, other, tmp_path / "absent"])}

    assert set(found) == {str(f) for f in files} | {str(other / "2025/01/rollout-x.jsonl")}
    for f in files[:3]:
        assert found[str(f)].project_key == "-home-u-proj"
    assert found[str(root / "loose.jsonl")].project_key == "projects"
    assert found[str(other / "2025/01/rollout-x.jsonl")].format == "codex"
    assert project_key(root, files[1]) == "-home-u-proj"
    assert transcript_at([root], str(files[2])).project_key == "-home-u-proj"
    assert transcript_at([root], str(session / "tool-results" / "toolu_1.txt")) is None
    assert transcript_at([root], str(tmp_path / "elsewhere.jsonl")) is None
    assert [t.path for t in discover([root], under=session)] == [str(f) for f in files[1:3]]


def test_bulk_read_reports_every_line_with_offsets_and_numbers(tmp_path: Path) -> None:
    path = tmp_path / "s.jsonl"
    lines = [line(i) for i in range(1, 2001)]
    lines.insert(5, b"\n")  # an empty line is skipped but counted
    path.write_bytes(b"".join(lines))
    tail = FileTail(str(path), "p", "claude_code")

    records, errors, chunks = read_all(tail, max_lines=300)

    assert not errors
    assert len(records) == 2000
    assert len(chunks) > 1 and all(len(c.records) <= 300 for c in chunks)
    offset = 0
    expected = {}
    for number, raw in enumerate(lines, start=1):
        if raw != b"\n":
            expected[offset] = (number, raw[:-1])
        offset += len(raw)
    assert {r.source.byte_offset: (r.source.line_number, r.raw) for r in records} == expected
    assert all(r.project_key == "p" and r.source.byte_length == len(r.raw) for r in records)
    assert tail.offset == path.stat().st_size and tail.line_count == 2001
    assert chunks[-1].offset == tail.offset and chunks[-1].line_count == 2001


def test_partial_line_waits_for_its_newline(tmp_path: Path) -> None:
    path = tmp_path / "s.jsonl"
    first, second = line(1), line(2)
    path.write_bytes(first + second[:10])
    tail = FileTail(str(path), "p", "claude_code")

    records, _, _ = read_all(tail)
    assert [r.uuid for r in records] == ["u1"]
    assert tail.offset == len(first) and tail.at_eof

    with path.open("ab") as f:
        f.write(second[10:-1])
    assert tail.read(100, 1 << 30) is None  # still no newline
    with path.open("ab") as f:
        f.write(b"\n")
    chunk = tail.read(100, 1 << 30)
    assert [r.uuid for r in chunk.records] == ["u2"]
    assert chunk.records[0].raw == second[:-1]
    assert chunk.records[0].source.byte_offset == len(first)
    assert chunk.offset == len(first) + len(second)


def test_huge_line_is_read_whole(tmp_path: Path) -> None:
    path = tmp_path / "s.jsonl"
    big = line(2, "x" * (20 * 1024 * 1024))
    path.write_bytes(line(1) + big[: len(big) // 2])
    tail = FileTail(str(path), "p", "claude_code")
    assert [r.uuid for r in read_all(tail)[0]] == ["u1"]
    with path.open("ab") as f:
        f.write(big[len(big) // 2:] + line(3))

    records, errors, _ = read_all(tail)

    assert not errors
    assert [r.uuid for r in records] == ["u2", "u3"]
    assert len(records[0].text) == 20 * 1024 * 1024
    assert records[0].source.byte_length == len(big) - 1


def test_bad_lines_become_errors_between_good_ones(tmp_path: Path) -> None:
    path = tmp_path / "s.jsonl"
    bad_json = b'{"type": "user", oops\n'
    bad_utf8 = b'{"type": "user", "x": "\xff\xfe"}\n'
    content = [line(1), bad_json, line(3), bad_utf8, line(5), b"[1, 2]\n"]
    path.write_bytes(b"".join(content))
    tail = FileTail(str(path), "proj", "claude_code")

    records, errors, _ = read_all(tail)

    assert [r.uuid for r in records] == ["u1", "u3", "u5"]
    assert [(e.reason, e.source.line_number, e.source.byte_offset) for e in errors] == [
        ("invalid_json", 2, len(line(1))),
        ("invalid_utf8", 4, len(line(1)) + len(bad_json) + len(line(3))),
        ("not_an_object", 6, sum(map(len, content[:5]))),
    ]
    assert all(e.source.path == str(path) and e.project_key == "proj" for e in errors)


def test_truncation_and_replacement_start_again_with_reset(tmp_path: Path) -> None:
    path = tmp_path / "s.jsonl"
    path.write_bytes(line(1) + line(2))
    tail = FileTail(str(path), "p", "claude_code")
    read_all(tail)

    path.write_bytes(line(3))  # same inode, shorter
    chunk = tail.read(100, 1 << 30)
    assert chunk.reset and [r.uuid for r in chunk.records] == ["u3"]
    assert chunk.records[0].source.byte_offset == 0 and chunk.records[0].source.line_number == 1
    assert tail.read(100, 1 << 30) is None

    # Same inode, longer, different first bytes: only the head hash can tell.
    path.write_bytes(line(7) + line(8) + line(9))
    chunk = tail.read(100, 1 << 30)
    assert chunk.reset and [r.uuid for r in chunk.records] == ["u7", "u8", "u9"]

    # Replaced by another file (new inode), same first line.
    tmp = tmp_path / "new.jsonl"
    tmp.write_bytes(line(7) + line(8) + line(9) + line(10))
    os.replace(tmp, path)
    chunk = tail.read(100, 1 << 30)
    assert chunk.reset and [r.uuid for r in chunk.records] == ["u7", "u8", "u9", "u10"]
    assert chunk.source.identity == f"{path.stat().st_dev}:{path.stat().st_ino}"

    with path.open("ab") as f:  # a plain append is no reset
        f.write(line(11))
    chunk = tail.read(100, 1 << 30)
    assert not chunk.reset and [r.uuid for r in chunk.records] == ["u11"]

    path.unlink()
    assert tail.read(100, 1 << 30) is None and tail.missing
    path.write_bytes(line(12))
    chunk = tail.read(100, 1 << 30)
    assert chunk.reset and [r.uuid for r in chunk.records] == ["u12"] and not tail.missing


def test_head_grows_with_a_short_file(tmp_path: Path) -> None:
    path = tmp_path / "s.jsonl"
    path.write_bytes(line(1))
    tail = FileTail(str(path), "p", "claude_code")
    read_all(tail)
    assert tail.head_length == len(line(1))
    with path.open("ab") as f:
        for i in range(2, 40):
            f.write(line(i))
    records, _, chunks = read_all(tail)
    assert len(records) == 38 and not any(c.reset for c in chunks)
    assert tail.head_length == 1024


def test_final_read_reports_an_unterminated_tail(tmp_path: Path) -> None:
    cut = tmp_path / "cut.jsonl"
    cut.write_bytes(line(1) + line(2)[:15])
    records, errors, _ = read_all(FileTail(str(cut), "p", "claude_code"), final=True)
    assert [r.uuid for r in records] == ["u1"]
    assert [(e.reason, e.source.line_number, e.source.byte_offset) for e in errors] == [
        ("truncated_tail", 2, len(line(1)))]

    whole = tmp_path / "whole.jsonl"
    whole.write_bytes(line(1) + line(2)[:-1])
    tail = FileTail(str(whole), "p", "claude_code")
    records, errors, _ = read_all(tail, final=True)
    assert [r.uuid for r in records] == ["u1", "u2"] and not errors
    # Reported, not consumed: should the file grow after all, the line is read again whole.
    assert tail.offset == len(line(1)) and tail.line_count == 1
    assert read_all(tail, final=True)[:2] == ([], []), "reported once"
    with whole.open("ab") as out:
        out.write(b"\n" + line(3))
    records, errors, _ = read_all(tail)
    assert [r.uuid for r in records] == ["u2", "u3"] and not errors


def test_acknowledgements_apply_in_order_and_rewind_resends(tmp_path: Path) -> None:
    path = tmp_path / "projects" / "p" / "s.jsonl"
    path.parent.mkdir(parents=True)
    path.write_bytes(b"".join(line(i) for i in range(1, 31)))
    ingestor = Ingestor(batch_lines=10)
    ingestor.track(discover([tmp_path / "projects"]))
    batches = [ingestor.next_batch() for _ in range(3)]
    assert ingestor.next_batch() is None
    tail = ingestor.files[str(path)]
    ends = [b.chunks[0].offset for b in batches]

    assert ingestor.acknowledge(batches[1].batch_id)
    assert tail.durable_offset == 0  # batch 1 is not committed yet
    assert ingestor.acknowledge(batches[0].batch_id)
    assert tail.durable_offset == ends[1] and ingestor.in_flight == 1
    assert not ingestor.idle()

    ingestor.rewind()
    again = ingestor.next_batch()
    assert again.batch_id > batches[2].batch_id
    assert [r.uuid for r in again.chunks[0].records] == [f"u{i}" for i in range(21, 31)]
    assert again.chunks[0].records[0].source.line_number == 21
    ingestor.acknowledge(again.batch_id)
    assert ingestor.next_batch() is None
    assert ingestor.idle()


def test_file_cut_back_inside_a_read_ahead_line_is_a_reset(tmp_path: Path) -> None:
    path = tmp_path / "s.jsonl"
    head = b"".join(line(i, "x" * 100) for i in range(20))  # > 1024 bytes: head hash fixed
    path.write_bytes(head + line(98)[:40])  # a half-written line, read ahead and kept
    tail = FileTail(str(path), "p", "claude_code")
    read_all(tail)
    os.truncate(path, len(head))  # rolled back to the start of that line...
    with path.open("ab") as out:
        out.write(line(99))  # ...and another line written in its place
    records, errors, chunks = read_all(tail)
    assert chunks[0].reset
    assert "u99" in [r.uuid for r in records] and not errors
    assert all(r.uuid != "u98" for r in records)


def snapshot() -> bytes:
    return b'{"type":"file-history-snapshot","messageId":"m","snapshot":{}}\n'


def test_records_naming_no_session_take_the_one_in_effect_even_after_resuming(
        tmp_path: Path) -> None:
    path = tmp_path / "resumed.jsonl"
    other = orjson.dumps({"type": "user", "uuid": "n1", "sessionId": "s2"}) + b"\n"
    path.write_bytes(snapshot() + line(1) + snapshot() + other + snapshot())
    whole, _, _ = read_all(FileTail(str(path), "p", "claude_code"))
    assert [r.session_id for r in whole] == ["", "s1", "s1", "s2", "s2"]

    # Resume after two lines, as a restarted ingest does from the store's offsets.
    first = FileTail(str(path), "p", "claude_code")
    chunk = first.read(2, 1 << 30)
    durable = Durable(chunk.source, chunk.offset, chunk.line_count, chunk.session_id)
    resumed = FileTail(str(path), "p", "claude_code")
    resumed.resume(durable)
    rest, _, _ = read_all(resumed)
    assert [r.session_id for r in rest] == [r.session_id for r in whole[2:]] == ["s1", "s2", "s2"]


def rewrite_in_place(path: Path, content: bytes) -> None:
    """Truncate and write again through the same inode (as `>` in a shell does)."""
    with path.open("r+b") as f:
        f.truncate(0)
        f.write(content)


def test_truncated_and_regrown_past_the_offset_is_a_reset(tmp_path: Path) -> None:
    path = tmp_path / "s.jsonl"
    path.write_bytes(b"".join(line(i) for i in range(1, 41)))
    tail = FileTail(str(path), "p", "claude_code")
    read_all(tail)
    inode = path.stat().st_ino

    # Same inode, same first 1,024 bytes, larger than before: only the bytes before the
    # offset tell that lines 21.. are not the ones that were read.
    new = b"".join(line(i) for i in range(1, 21)) + b"".join(
        line(i, f"rewritten line {i}") for i in range(21, 61))
    rewrite_in_place(path, new)
    assert path.stat().st_ino == inode and len(new) > tail.offset

    records, errors, chunks = read_all(tail)
    assert chunks[0].reset and not errors
    assert [r.uuid for r in records] == [f"u{i}" for i in range(1, 61)]
    assert records[-1].text == "rewritten line 60"


def test_the_bytes_before_the_offset_are_checked_after_a_resume(tmp_path: Path) -> None:
    path = tmp_path / "s.jsonl"
    path.write_bytes(b"".join(line(i) for i in range(1, 41)))
    first = FileTail(str(path), "p", "claude_code")
    _, _, chunks = read_all(first)
    last = chunks[-1]
    assert last.tail_sha256
    durable = Durable(first.source(), last.offset, last.line_count, last.session_id,
                      last.tail_sha256)

    # Unchanged: the resumed reader goes on from the offset.
    resumed = FileTail(str(path), "p", "claude_code")
    resumed.resume(durable)
    with path.open("ab") as f:
        f.write(line(41))
    records, _, chunks = read_all(resumed)
    assert [r.uuid for r in records] == ["u41"] and not chunks[0].reset

    # Rewritten past the offset while nobody was reading: read again from byte 0.
    rewrite_in_place(path, b"".join(line(i) for i in range(1, 21)) + b"".join(
        line(i, f"rewritten {i}") for i in range(21, 50)))
    again = FileTail(str(path), "p", "claude_code")
    again.resume(durable)
    records, _, chunks = read_all(again)
    assert chunks[0].reset
    assert [r.uuid for r in records] == [f"u{i}" for i in range(1, 50)]


def test_a_line_over_the_limit_is_an_error_read_past_in_bounded_memory(tmp_path: Path) -> None:
    import tracemalloc

    path = tmp_path / "s.jsonl"
    huge = line(2, "y" * (8 * 1024 * 1024))
    path.write_bytes(line(1) + huge + line(3))
    tail = FileTail(str(path), "p", "claude_code", max_line_bytes=1024 * 1024)

    tracemalloc.start()
    try:
        records, errors, _ = read_all(tail)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()

    assert peak < len(huge) * 3 // 4  # never the whole line at once
    assert [r.uuid for r in records] == ["u1", "u3"]
    (error,) = errors
    assert error.reason == "line_too_long"
    assert (error.source.byte_offset, error.source.line_number, error.source.byte_length) == (
        len(line(1)), 2, len(huge) - 1)
    assert error.excerpt == huge[:200]
    assert records[1].source.line_number == 3
    assert tail.offset == path.stat().st_size


def test_a_line_over_the_limit_does_not_hold_up_other_files(tmp_path: Path) -> None:
    big, small = tmp_path / "big.jsonl", tmp_path / "small.jsonl"
    big.write_bytes(line(1, "z" * (16 * 1024 * 1024)))
    small.write_bytes(line(2))
    ingestor = Ingestor(batch_lines=100, batch_bytes=1024 * 1024, max_line_bytes=1024 * 1024)
    ingestor.track([Transcript(str(big), "p", "claude_code")], urgent=True)
    ingestor.track([Transcript(str(small), "p", "claude_code")], urgent=True)

    seen = []
    while ingestor.has_work():
        batch = ingestor.next_batch()
        if batch is not None:
            seen += [r.uuid for c in batch.chunks for r in c.records]
            seen += [e.reason for c in batch.chunks for e in c.errors]
    assert seen == ["u2", "line_too_long"]


def quiet(path: Path, seconds: float = 60) -> None:
    """Make the file look unmodified for `seconds`."""
    then = path.stat().st_mtime - seconds
    os.utime(path, (then, then))


def test_live_a_quiet_unterminated_last_line_is_read_once_and_not_again_with_its_newline(
        tmp_path: Path) -> None:
    path = tmp_path / "s.jsonl"
    path.write_bytes(line(1) + line(2)[:-1])
    tail = FileTail(str(path), "p", "claude_code", quiet_seconds=5)

    records, errors, _ = read_all(tail)
    assert [r.uuid for r in records] == ["u1"] and not errors and tail.tail_waiting

    quiet(path)
    records, errors, _ = read_all(tail)
    assert [r.uuid for r in records] == ["u2"] and not errors and not tail.tail_waiting
    first = records[0]
    assert tail.offset == len(line(1))  # reported, not consumed
    assert read_all(tail)[0] == []  # once

    # The writer was only slow: its newline arrives, then another line. The completed line
    # is the same bytes at the same place (the store keeps it once, by key); no empty line.
    with path.open("ab") as f:
        f.write(b"\n" + line(3))
    records, errors, _ = read_all(tail)
    assert [r.uuid for r in records] == ["u2", "u3"] and not errors
    assert (records[0].raw, records[0].source) == (first.raw, first.source)
    assert records[1].source.line_number == 3


def test_live_a_quiet_cut_last_line_is_a_truncated_tail_until_it_grows(tmp_path: Path) -> None:
    path = tmp_path / "s.jsonl"
    path.write_bytes(line(1) + line(2)[:25])
    tail = FileTail(str(path), "p", "claude_code", quiet_seconds=5)
    read_all(tail)
    quiet(path)
    records, errors, _ = read_all(tail)
    assert not records
    assert [(e.reason, e.source.byte_offset, e.source.line_number) for e in errors] == [
        ("truncated_tail", len(line(1)), 2)]

    with path.open("ab") as f:  # the rest of the line after all
        f.write(line(2)[25:])
    records, errors, _ = read_all(tail)
    assert [r.uuid for r in records] == ["u2"] and not errors
    assert records[0].source.byte_offset == len(line(1))


def test_links_out_of_a_root_are_reported_not_read_and_links_inside_are_not_read_twice(
        tmp_path: Path) -> None:
    root = tmp_path / "projects"
    project = root / "-home-u-proj"
    project.mkdir(parents=True)
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "id_key").write_text("-----BEGIN OPENSSH PRIVATE KEY-----\n")
    (outside / "other.jsonl").write_bytes(line(9))
    (project / "s1.jsonl").write_bytes(line(1))
    (project / "leak.jsonl").symlink_to("../../outside/id_key")
    (project / "alias.jsonl").symlink_to("s1.jsonl")  # inside: read once, as s1.jsonl
    (project / "linked").symlink_to(outside, target_is_directory=True)
    (project / "inner").symlink_to(project, target_is_directory=True)

    problems = []
    found = discover([root], problems=problems)

    assert [t.path for t in found] == [str(project / "s1.jsonl")]
    assert sorted((p.path, p.reason) for p in problems) == [
        (str(project / "leak.jsonl"), "symlink_outside_root"),
        (str(project / "linked"), "symlink_outside_root")]
    # The watcher's way in: a changed path is checked the same way, links resolved.
    problems.clear()
    assert transcript_at([root], str(project / "leak.jsonl"), problems) is None
    assert transcript_at([root], str(project / "linked" / "other.jsonl"), problems) is None
    assert transcript_at([root], str(project / "alias.jsonl"), problems) is None
    assert [p.reason for p in problems] == ["symlink_outside_root"] * 2
    # A file that turns into a link after it was found is not followed either.
    tail = FileTail(str(project / "s1.jsonl"), "p", "claude_code")
    read_all(tail)
    (project / "s1.jsonl").unlink()
    (project / "s1.jsonl").symlink_to(outside / "id_key")
    assert read_all(tail)[0] == [] and tail.problem is not None
