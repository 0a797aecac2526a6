"""Control characters from transcripts reach the terminal escaped, whatever command prints them."""

from __future__ import annotations

import json
import subprocess
import sys

import orjson

from threadline.tables import printable, render

HOSTILE = "s\x1b]0;pwned\x07\x1b[2J"  # retitles the window, then clears the screen


def threadline(*args: str) -> str:
    result = subprocess.run([sys.executable, "-m", "cli", *args], capture_output=True,
                            timeout=120)
    return result.stdout.decode() + result.stderr.decode()


def test_printable_escapes_c0_c1_and_bidi_controls_but_keeps_text():
    assert printable(HOSTILE) == "s\\x1b]0;pwned\\x07\\x1b[2J"
    assert printable("\x9b31m \x7f \u202eevil") == "\\x9b31m \\x7f \\u202eevil"
    assert printable("ligne 1\n\tété ✓ 日本") == "ligne 1\n\tété ✓ 日本"
    table = render(["ID"], [[HOSTILE]])
    assert "\x1b" not in table and "\\x1b[2J" in table


def test_cli_commands_escape_a_hostile_session_id_and_file_name(tmp_path):
    folder = tmp_path / "projects" / "-home-u-app"
    folder.mkdir(parents=True)
    line = orjson.dumps({
        "type": "user", "sessionId": HOSTILE, "uuid": "0b6f8e0e-0c8a-4a3b-9a0e-1c2d3e4f5a6b",
        "parentUuid": None, "cwd": "/home/u/app", "timestamp": "2026-11-01T10:00:00.000Z",
        "message": {"role": "user", "content": "title \x1b[31mred\x1b[0m"}})
    (folder / (HOSTILE + ".jsonl")).write_bytes(line + b"\n{broken \x1b[2J\n")
    db = str(tmp_path / "t.db")
    threadline("import", "--db", db, str(tmp_path / "projects"))
    sessions = json.loads(threadline("sessions", "--db", db, "--json"))
    assert [s["session_id"] for s in sessions] == [HOSTILE]  # JSON escapes it by itself
    for args in (["sessions"], ["errors"], ["threads", HOSTILE, "--tree"],
                 ["analyze", HOSTILE], ["export"], ["errors", "--json"]):
        out = threadline(*args, "--db", db)
        assert "\x1b" not in out and "\x07" not in out, args
        if args != ["export"] and args != ["errors", "--json"]:
            assert "\\x1b" in out, args
