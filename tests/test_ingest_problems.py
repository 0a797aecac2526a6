"""Files and folders under a root that are not read are reported, not skipped silently.

End to end with the real pipeline (`threadline import`, read back with `threadline errors`):
a link leading out of a root (`leak.jsonl -> ../outside/id_key`) is not read, and says so.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import orjson

SECRET = b"-----BEGIN OPENSSH PRIVATE KEY----- not-a-real-key-3f9a"


def line(i: int) -> bytes:
    return orjson.dumps({"type": "user", "uuid": f"u{i}", "sessionId": "s1",
                         "message": {"role": "user", "content": f"hello {i}"}}) + b"\n"


def threadline(*args: str) -> bytes:
    return subprocess.run([sys.executable, "-m", "cli", *args], capture_output=True,
                          timeout=300, check=True).stdout


def test_a_link_out_of_the_root_is_reported_and_never_read(tmp_path: Path) -> None:
    root = tmp_path / "projects"
    project = root / "-home-u-app"
    project.mkdir(parents=True)
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "id_key").write_bytes(SECRET + b"\n")
    (project / "s1.jsonl").write_bytes(line(1) + line(2))
    (project / "leak.jsonl").symlink_to("../../outside/id_key")
    db = tmp_path / "t.db"

    summary = json.loads(threadline("import", "--db", str(db), "--json",
                                    str(root)).splitlines()[-1])
    listed = json.loads(threadline("errors", "--db", str(db), "--json", "--limit", "0"))

    assert [(e["path"], e["reason"], e["excerpt"]) for e in listed] == [
        (str(project / "leak.jsonl"), "symlink_outside_root", "")]
    assert "outside the root" in listed[0]["detail"]
    assert summary  # the import itself went through
    stored = b"".join(p.read_bytes() for p in tmp_path.glob("t.db*"))
    assert b"hello 2" in stored and SECRET not in stored
    table = threadline("errors", "--db", str(db)).decode()
    assert "symlink_outside_root" in table and str(project / "leak.jsonl") in table
