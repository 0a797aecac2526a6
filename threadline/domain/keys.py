"""Storage keys that more than one service computes (analysis when it normalises a batch,
the store when it upgrades a database)."""

from __future__ import annotations

import hashlib


def codex_key(session_id: str, raw: bytes) -> str:
    """A Codex rollout line's key: its session (`session_meta`'s id) and the line itself.

    Codex lines carry no id, but each carries its own timestamp (to the millisecond) and its
    whole payload, so the same bytes in the same session are the same event, wherever the
    file lies and whatever it is called: the same rollout imported from two folders (or moved
    to `archived_sessions/`) is stored once.
    """
    digest = hashlib.blake2b(digest_size=12)
    digest.update(f"{session_id}\n".encode())
    digest.update(raw)
    return "codex:" + digest.hexdigest()
