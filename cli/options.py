"""What every command takes from its command line: the settings in effect, and the paths
it was given."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from threadline import config

# The command-line flag that sets each setting a command can take from its flags.
FLAGS = {
    "db": "--db", "roots": "--root", "host": "--host", "grpc_port": "--grpc-port",
    "ws_host": "--ws-host", "ws_port": "--ws-port", "store_addr": "--store-addr",
    "analysis_addr": "--analysis-addr", "ready_file": "--ready-file", "follow": "--no-follow",
    "tls_cert": "--tls-cert", "tls_key": "--tls-key", "tls_ca": "--tls-ca",
}


def flag_values(args: argparse.Namespace, **extra: object) -> dict[str, object]:
    """The settings the command line gives (None: not given), by setting name."""
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
    return values


def settings(args: argparse.Namespace, **extra: object) -> config.Settings:
    """Flags that were given override the environment, which overrides defaults."""
    return config.resolve(flag_values(args, **extra))


def existing_paths(given: list[str], command: str) -> list[Path] | None:
    """The paths given, resolved; None (after saying which) if any does not exist."""
    paths = [Path(p).expanduser().resolve() for p in given]
    missing = [str(p) for p in paths if not p.exists()]
    if missing:
        print(f"threadline {command}: no such file or folder: {', '.join(missing)}",
              file=sys.stderr)
        return None
    return paths

