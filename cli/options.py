"""What every command takes from its command line: the settings in effect, and the paths
it was given."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from threadline import config


def settings(args: argparse.Namespace, **extra: object) -> config.Settings:
    """Flags that were given override the environment, which overrides defaults."""
    values = {
        "db": getattr(args, "db", None),
        "roots": getattr(args, "root", None) or None,
        "host": getattr(args, "host", None),
        "grpc_port": getattr(args, "grpc_port", None),
        "ws_host": getattr(args, "ws_host", None),
        "ws_port": getattr(args, "ws_port", None),
        "store_addr": getattr(args, "store_addr", None),
        "analysis_addr": getattr(args, "analysis_addr", None),
        "ready_file": getattr(args, "ready_file", None),
        "follow": False if getattr(args, "no_follow", False) else None,
        "tls_cert": getattr(args, "tls_cert", None),
        "tls_key": getattr(args, "tls_key", None),
        "tls_ca": getattr(args, "tls_ca", None),
    }
    values.update(extra)
    return config.resolve(values)


def existing_paths(given: list[str], command: str) -> list[Path] | None:
    """The paths given, resolved; None (after saying which) if any does not exist."""
    paths = [Path(p).expanduser().resolve() for p in given]
    missing = [str(p) for p in paths if not p.exists()]
    if missing:
        print(f"threadline {command}: no such file or folder: {', '.join(missing)}",
              file=sys.stderr)
        return None
    return paths

