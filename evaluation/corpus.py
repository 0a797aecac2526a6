"""Import a transcript folder into a fresh database through the real pipeline.

The evaluations read what `threadline import` stored, so they measure what a user gets, not
what the parser returns in isolation.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

DEFAULT_CORPUS = Path(__file__).resolve().parent.parent.parent / "shared" / "corpus"


def import_folder(folder: Path, db: Path) -> dict:
    """Run `threadline import --json` on `folder` into `db`; its summary dict."""
    done = subprocess.run(
        [sys.executable, "-m", "cli", "import", "--db", str(db), "--json", str(folder)],
        capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"threadline import failed ({done.returncode}):\n{done.stderr}")
    return json.loads(done.stdout.strip().splitlines()[-1])
