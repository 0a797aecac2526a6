"""The store service: owns the SQLite database (one writer thread, pooled readers)."""

from threadline.storage.readonly import open_readonly

__all__ = ["open_readonly"]
