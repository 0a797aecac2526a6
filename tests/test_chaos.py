"""The chaos check (bench/chaos.py): a short version of `make chaos`, and the comparison it
rests on, shown to catch each kind of difference."""

from __future__ import annotations

import shutil
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

from bench import chaos

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def imported(tmp_path_factory) -> Path:
    """A small corpus (with planted malformed lines) imported by the real `threadline import`."""
    tmp = tmp_path_factory.mktemp("chaos-compare")
    chaos.make_corpus(tmp / "projects", 600, seed=5)
    db = tmp / "reference.db"
    subprocess.run([sys.executable, "-m", "cli", "import", "--db", str(db),
                    str(tmp / "projects")], check=True, capture_output=True, cwd=REPO,
                   timeout=120)
    return db


def test_identical_databases_compare_clean(imported):
    assert chaos.compare(imported, imported)[-1].startswith("integrity_check ok")
    assert not [line for line in chaos.compare(imported, imported) if line.startswith("FAIL")]


def test_each_kind_of_difference_is_counted(imported, tmp_path):
    damaged = tmp_path / "damaged.db"
    shutil.copy(imported, damaged)
    with sqlite3.connect(damaged) as conn:
        keys = [row[0] for row in conn.execute("SELECT key FROM messages ORDER BY seq LIMIT 3")]
        top = conn.execute("SELECT max(seq) FROM changes").fetchone()[0]
        # Lost: one message gone (with its change entry).
        conn.execute("DELETE FROM changes WHERE ref = ?", (keys[0],))
        conn.execute("DELETE FROM messages WHERE key = ?", (keys[0],))
        # Stored twice: the same line again under another key and sequence number.
        cursor = conn.execute("SELECT * FROM messages WHERE key = ?", (keys[1],))
        row = dict(zip([d[0] for d in cursor.description], cursor.fetchone(), strict=True))
        row.update(seq=top + 1, key=keys[1] + "-again")
        conn.execute(f"INSERT INTO messages ({', '.join(row)}) "
                     f"VALUES ({', '.join('?' * len(row))})", list(row.values()))
        # Differing: one text changed.
        conn.execute("UPDATE messages SET text = 'changed' WHERE key = ?", (keys[2],))
        # Extra: a parse error the reference does not have.
        conn.execute("INSERT INTO parse_errors (seq, path, byte_offset, line_number, "
                     "byte_length, reason, detail, excerpt, project_key) VALUES "
                     "(?, '/nowhere.jsonl', 0, 1, 1, 'invalid_json', '', x'', '')", (top + 2,))
    report = chaos.compare(imported, damaged)
    row = next(line for line in report if line.startswith("messages "))
    assert row.split()[2:] == ["1", "0", "1", "1"]  # missing, extra, duplicate, differing
    row = next(line for line in report if line.startswith("parse_errors "))
    assert row.split()[2:] == ["0", "1", "0", "0"]
    failures = "\n".join(line for line in report if line.startswith("FAIL"))
    assert "messages without their change entry" in failures  # the copy has none
    assert "parse errors without their change entry" in failures


def test_planted_lines_become_parse_errors(imported):
    with sqlite3.connect(f"file:{imported}?mode=ro", uri=True) as conn:
        errors = conn.execute("SELECT count(*) FROM parse_errors").fetchone()[0]
        files = conn.execute("SELECT count(*) FROM sources").fetchone()[0]
    planted_in = len(range(0, files, chaos.PLANT_EVERY))
    assert errors == planted_in * len(chaos.PLANTED) > 0


@pytest.mark.timeout(300)
def test_kill_minus_nine_during_an_import_changes_nothing(tmp_path):
    """`make chaos` in small: 3 kills -9 of random service processes (store, ingest+analysis,
    the follower) at random moments of `threadline import`, then 3 of `threadline up` (the
    stream service too); then no row missing, extra, duplicated or different from an
    uninterrupted import, integrity ok, no process or port left behind."""
    result = subprocess.run([sys.executable, "-m", "bench.chaos", "--records", "6000",
                             "--kills", "3", "--seed", "3", "--min-gap", "0.2",
                             "--max-gap", "0.8", "--keep", str(tmp_path)],
                            capture_output=True, text=True, cwd=REPO, timeout=280)
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-2000:]
    assert "PASSED" in result.stdout
