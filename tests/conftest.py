"""Shared test helpers: the whole pipeline in one event loop, on port 0, in tmp folders."""

from __future__ import annotations

import asyncio
import os
import secrets
import time
from collections.abc import Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest
from hypothesis import settings as hypothesis_settings

from threadline import config

# Property tests: a modest search by default (CI, two cores); HYPOTHESIS_PROFILE=thorough
# searches much harder. No deadline: one slow example on a busy machine is not a failure.
hypothesis_settings.register_profile("ci", deadline=None, max_examples=200)
hypothesis_settings.register_profile("thorough", deadline=None, max_examples=5000)
hypothesis_settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))

# Resolved: `threadline import` stores resolved paths, and ../shared may be a symlink.
CORPUS = (Path(__file__).resolve().parents[2] / "shared" / "corpus").resolve()


@pytest.fixture
def corpus() -> Path:
    if not CORPUS.is_dir():
        pytest.skip("../shared/corpus is not present")
    return CORPUS


# The PostgreSQL server the storage tests also run against (CI's machine runs one); a test
# session creates a database of its own there and drops it at the end.
POSTGRES_URL = os.environ.get("THREADLINE_TEST_POSTGRES",
                              "postgresql://postgres@127.0.0.1:5432/postgres")


@pytest.fixture(scope="session")
def postgres_database() -> str:
    """The URL of a fresh PostgreSQL database for this test session, dropped at its end; the
    tests that need it are skipped, saying why, when there is no server to make it on."""
    try:
        import psycopg
    except ImportError:
        pytest.skip("PostgreSQL: psycopg is not installed (uv sync installs the dev group)")
    from sqlalchemy.engine import make_url

    name = f"threadline_test_{secrets.token_hex(4)}"
    try:
        with psycopg.connect(POSTGRES_URL, autocommit=True, connect_timeout=3) as admin:
            admin.execute(f'CREATE DATABASE "{name}"')
    except psycopg.OperationalError as exc:
        reason = str(exc).strip().splitlines()[0]
        pytest.skip(f"PostgreSQL: no server at {POSTGRES_URL} ({reason})")
    yield make_url(POSTGRES_URL).set(database=name).render_as_string(hide_password=False)
    with psycopg.connect(POSTGRES_URL, autocommit=True, connect_timeout=3) as admin:
        admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture
def postgres_url(request) -> str:
    """A fresh, empty schema of the session's PostgreSQL database (chosen by search_path),
    dropped after the test."""
    import psycopg

    base = request.getfixturevalue("postgres_database")
    schema = f"t_{secrets.token_hex(6)}"
    with psycopg.connect(base, autocommit=True) as conn:
        conn.execute(f"CREATE SCHEMA {schema}")
    yield f"{base}?options=-csearch_path%3D{schema}"
    with psycopg.connect(base, autocommit=True) as conn:
        conn.execute(f"DROP SCHEMA {schema} CASCADE")


@pytest.fixture(params=["sqlite", "postgresql"])
def database_url(request, tmp_path):
    """Where a test's store keeps its data, once per backend: a SQLite file in tmp_path, or
    a fresh schema of a PostgreSQL database made for the test session."""
    if request.param == "sqlite":
        return tmp_path / "t.db"
    return request.getfixturevalue("postgres_url")


def is_url(db: object) -> bool:
    return "://" in str(db)


@dataclass
class Pipeline:
    settings: config.Settings
    store: object
    analysis: object
    stream: object
    ingest: object

    @property
    def ws_url(self) -> str:
        return f"ws://127.0.0.1:{self.stream.ws_port}/ws"

    @property
    def ws_headers(self) -> dict[str, str]:
        """What a WebSocket client without an Origin presents: the installation's token."""
        from threadline import auth

        return {"Authorization": f"Bearer {auth.for_client(self.settings).token}"}

    @property
    def store_addr(self) -> str:
        return f"127.0.0.1:{self.store.port}"

    @property
    def stream_addr(self) -> str:
        return f"127.0.0.1:{self.stream.port}"


@asynccontextmanager
async def running_pipeline(tmp_path: Path, roots: list[Path], **overrides):
    """Start store, analysis, stream and ingest in this event loop; stop them afterwards."""
    from services.analysis import server as analysis_server
    from services.ingest import server as ingest_server
    from services.store import server as store_server
    from services.stream import server as stream_server

    if is_url(overrides.get("db", "")):
        # A database server has no folder here for the token: the services are given one.
        overrides.setdefault("token", "pipeline-tests-token")
    settings = config.resolve({"db": tmp_path / "threadline.db", "roots": roots, "port": 0,
                               "ws_port": 0, **overrides}, environ={})
    store = await store_server.start(settings)
    settings = settings.replace(store_addr=f"127.0.0.1:{store.port}")
    analysis = await analysis_server.start(settings)
    settings = settings.replace(analysis_addr=f"127.0.0.1:{analysis.port}")
    stream = await stream_server.start(settings)
    ingest = await ingest_server.start(settings)
    try:
        yield Pipeline(settings, store, analysis, stream, ingest)
    finally:
        for service in (ingest, stream, analysis, store):
            await service.stop()


async def eventually(check: Callable[[], object], timeout: float = 20.0,
                     interval: float = 0.02):
    """Wait until `check()` returns something truthy (awaiting it if needed); return it."""
    deadline = time.monotonic() + timeout
    while True:
        result = check()
        if asyncio.iscoroutine(result):
            result = await result
        if result:
            return result
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not met within {timeout} s")
        await asyncio.sleep(interval)
