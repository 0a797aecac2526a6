"""Every setting of threadline, in one table.

Each setting resolves in one place, in this order: an explicit argument (command-line flag),
then its environment variable, then its default. Service code receives a `Settings` object and
never reads `os.environ` itself.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, fields
from pathlib import Path

import platformdirs


def default_roots(environ: Mapping[str, str]) -> tuple[Path, ...]:
    """Claude Code's transcript folders: ~/.claude/projects, plus $CLAUDE_CONFIG_DIR/projects
    (Claude Code's own variable; it may list several folders separated by commas)."""
    roots = [Path.home() / ".claude" / "projects"]
    config_dir = environ.get("CLAUDE_CONFIG_DIR")
    if config_dir:
        for part in config_dir.split(","):
            if part.strip():
                roots.append(Path(part.strip()).expanduser() / "projects")
    return tuple(dict.fromkeys(roots))


def default_db(environ: Mapping[str, str]) -> Path:
    return Path(platformdirs.user_data_dir("threadline")) / "threadline.db"


def is_database_url(db: Path | str) -> bool:
    """Whether `--db` names a database by URL (postgresql://...) rather than a SQLite file."""
    return "://" in str(db)


def data_folder(db: Path | str) -> Path:
    """The folder of this installation's own files (the token): beside a SQLite database;
    the default data folder for a database named by URL, which has no folder here."""
    return default_db({}).parent if is_database_url(db) else Path(db).parent


@dataclass(frozen=True)
class Setting:
    name: str
    env: str
    default: object
    help: str


# name, environment variable, default, help
SETTINGS: tuple[Setting, ...] = (
    Setting("db", "THREADLINE_DB", default_db,
            "SQLite database file, or a PostgreSQL URL (postgresql://user@host:port/name; "
            "needs the `postgres` extra)"),
    Setting("roots", "THREADLINE_ROOTS", default_roots,
            "transcript folders to watch (os.pathsep-separated in the environment)"),
    Setting("host", "THREADLINE_HOST", "127.0.0.1", "address the gRPC servers bind to"),
    Setting("grpc_port", "THREADLINE_GRPC_PORT", 50051,
            "first gRPC port: store, analysis, ingest and stream use it and the next three"),
    Setting("port", "THREADLINE_PORT", 0, "gRPC port of a single service run by `serve` (0: any)"),
    Setting("ws_host", "THREADLINE_WS_HOST", "127.0.0.1", "address of the WebSocket gateway"),
    Setting("ws_port", "THREADLINE_WS_PORT", 8765, "port of the WebSocket gateway"),
    Setting("store_addr", "THREADLINE_STORE_ADDR", "127.0.0.1:50051", "store service address"),
    Setting("analysis_addr", "THREADLINE_ANALYSIS_ADDR", "127.0.0.1:50052",
            "analysis service address"),
    Setting("watch_debounce_ms", "THREADLINE_WATCH_DEBOUNCE_MS", 10,
            "longest time watchfiles groups file changes before reporting them"),
    Setting("watch_step_ms", "THREADLINE_WATCH_STEP_MS", 1,
            "quiet time after which watchfiles reports a group of changes"),
    Setting("rescan_seconds", "THREADLINE_RESCAN_SECONDS", 30.0,
            "interval of the safety rescan that catches changes the watcher missed"),
    Setting("batch_lines", "THREADLINE_BATCH_LINES", 250, "most lines in one pipeline batch"),
    Setting("max_in_flight", "THREADLINE_MAX_IN_FLIGHT", 6,
            "batches ingest may send before the store acknowledges them"),
    Setting("subscriber_queue", "THREADLINE_SUBSCRIBER_QUEUE", 10000,
            "changes queued for one client before it is disconnected as too slow"),
    Setting("read_pool", "THREADLINE_READ_POOL", 3, "read-only SQLite connections of the store"),
    Setting("follow", "THREADLINE_FOLLOW", True,
            "keep following appends (false: read what exists, then stop)"),
    Setting("ready_file", "THREADLINE_READY_FILE", None,
            "write the bound port here once serving (used by the supervisor)"),
    Setting("log_level", "THREADLINE_LOG_LEVEL", "INFO", "DEBUG, INFO, WARNING or ERROR"),
    Setting("analyse", "THREADLINE_ANALYSE", True,
            "thread and analyse sessions as records arrive (false: store records only)"),
    Setting("pricing_file", "THREADLINE_PRICING_FILE", None,
            "JSON price table merged over the bundled one (usage costs; see docs/accounting.md)"),
    Setting("token", "THREADLINE_TOKEN", None,
            "secret callers present as `authorization: Bearer` (default: generated into "
            "`token` beside the database)"),
    Setting("tls_cert", "THREADLINE_TLS_CERT", None,
            "TLS certificate (PEM) of the gRPC servers and the WebSocket gateway"),
    Setting("tls_key", "THREADLINE_TLS_KEY", None, "private key (PEM) of --tls-cert"),
    Setting("tls_ca", "THREADLINE_TLS_CA", None,
            "certificate clients trust to verify the servers (default: --tls-cert itself)"),
    Setting("require_token", "THREADLINE_REQUIRE_TOKEN", False,
            "require the token for reads on loopback too (writes always require it)"),
    Setting("ws_origins", "THREADLINE_WS_ORIGINS", (),
            "browser origins the WebSocket gateway accepts, comma-separated (default: its own, "
            "http://127.0.0.1:PORT and http://localhost:PORT)"),
    Setting("allow_insecure_network", "THREADLINE_ALLOW_INSECURE_NETWORK", False,
            "let services listen beyond loopback without TLS (a private container network only;"
            " the token is still required)"),
    Setting("redact_patterns", "THREADLINE_REDACT_PATTERNS", None,
            "file of extra regular expressions (one a line) whose matches are redacted from "
            "transcript text, besides the built-in secret formats"),
    Setting("max_line_bytes", "THREADLINE_MAX_LINE_BYTES", 64 * 1024 * 1024,
            "longest transcript line read; a longer one is a line_too_long parse error"),
    Setting("tail_quiet_seconds", "THREADLINE_TAIL_QUIET_SECONDS", 3.0,
            "quiet time after which a last line without its newline is read anyway"),
    Setting("wal_limit_mb", "THREADLINE_WAL_LIMIT_MB", 64,
            "size the SQLite write-ahead log is kept under while the store runs (MiB)"),
)

_BY_NAME = {s.name: s for s in SETTINGS}


@dataclass(frozen=True)
class Settings:
    # A SQLite file (Path) or a database URL (str, e.g. postgresql://...).
    db: Path | str
    roots: tuple[Path, ...]
    host: str
    grpc_port: int
    port: int
    ws_host: str
    ws_port: int
    store_addr: str
    analysis_addr: str
    watch_debounce_ms: int
    watch_step_ms: int
    rescan_seconds: float
    batch_lines: int
    max_in_flight: int
    subscriber_queue: int
    read_pool: int
    follow: bool
    ready_file: Path | None
    log_level: str
    pricing_file: Path | None
    analyse: bool
    token: str | None
    tls_cert: Path | None
    tls_key: Path | None
    tls_ca: Path | None
    require_token: bool
    ws_origins: tuple[str, ...]
    allow_insecure_network: bool
    redact_patterns: Path | None
    max_line_bytes: int
    tail_quiet_seconds: float
    wal_limit_mb: int

    def replace(self, **changes: object) -> Settings:
        values = {f.name: getattr(self, f.name) for f in fields(self)}
        values.update(changes)
        return Settings(**values)  # type: ignore[arg-type]


def _convert(name: str, value: object, kind: type | str) -> object:
    kind = str(kind)
    if value is None:
        return None
    if name == "db":
        return str(value) if is_database_url(value) else Path(value).expanduser()  # type: ignore[arg-type]
    if name == "roots":
        if isinstance(value, str):
            value = [p for p in value.split(os.pathsep) if p]
        return tuple(Path(p).expanduser() for p in value)  # type: ignore[union-attr]
    if name == "ws_origins":
        if isinstance(value, str):
            value = value.split(",")
        return tuple(o.strip() for o in value if o.strip())  # type: ignore[union-attr]
    if "Path" in kind:
        return Path(value).expanduser()  # type: ignore[arg-type]
    if "bool" in kind:
        if isinstance(value, str):
            return value.strip().lower() in {"1", "true", "yes", "on"}
        return bool(value)
    if "int" in kind:
        return int(value)  # type: ignore[call-overload]
    if "float" in kind:
        return float(value)  # type: ignore[arg-type]
    return value


def resolve(args: Mapping[str, object] | None = None,
            environ: Mapping[str, str] | None = None) -> Settings:
    """Resolve every setting: argument (when not None) > environment variable > default."""
    args = args or {}
    environ = os.environ if environ is None else environ
    types = {f.name: f.type for f in fields(Settings)}
    values: dict[str, object] = {}
    for setting in SETTINGS:
        if args.get(setting.name) is not None:
            raw = args[setting.name]
        elif setting.env in environ:
            raw = environ[setting.env]
        else:
            raw = setting.default(environ) if callable(setting.default) else setting.default
        values[setting.name] = _convert(setting.name, raw, types[setting.name])
    return Settings(**values)  # type: ignore[arg-type]


def describe() -> list[tuple[str, str, str]]:
    """(environment variable, default, help) for every setting, for `threadline config`."""
    rows = []
    for s in SETTINGS:
        default = s.default(os.environ) if callable(s.default) else s.default
        if isinstance(default, tuple):
            default = os.pathsep.join(str(p) for p in default)
        rows.append((s.env, str(default), s.help))
    return rows
