"""What a person meets at the command line besides the figures: `--version`, and one line on
stderr with a non-zero exit (never a traceback) for a bad argument, a missing database or
another program's file; silence when the reader of the output goes away (`| head -1`);
`threadline config` saying every value in effect and where it came from."""

from __future__ import annotations

import asyncio
import json
import os
import sqlite3
import subprocess
import sys
from importlib import metadata
from pathlib import Path

import pytest
from store_support import batch, messages, running_store, write

from cli.installation import config_rows
from threadline import config

READS = [["sessions"], ["projects"], ["export"], ["usage"], ["tools"], ["errors"],
         ["threads", "abcd"], ["analyze", "abcd"]]
# The commands that would write the database.
WRITES = [["reparse"], ["import", "{folder}"]]


def threadline(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "cli", *args], capture_output=True, text=True,
                          timeout=120, env=env)


def one_line_refusal(result: subprocess.CompletedProcess, *expected: str) -> None:
    assert result.returncode != 0
    assert "Traceback" not in result.stderr
    assert len(result.stderr.splitlines()) == 1, result.stderr
    for text in expected:
        assert text in result.stderr


@pytest.fixture(scope="module")
def db(tmp_path_factory) -> Path:
    """A threadline database whose export is far more than a pipe holds."""
    path = tmp_path_factory.mktemp("polish") / "t.db"

    async def fill():
        async with running_store(path) as (_run, stub):
            await write(stub, [batch(i + 1, messages(i * 10, 10, prefix=f"s{i}-",
                                                     session=f"session-{i:04d}-{'x' * 40}"),
                                     path=f"/t/proj/{i}.jsonl", offset=1000)
                               for i in range(200)])

    asyncio.run(fill())
    return path


def test_version_is_the_installed_package_version():
    result = threadline("--version")
    assert result.returncode == 0
    assert result.stdout == f"threadline {metadata.version('threadline')}\n"


@pytest.mark.parametrize("args", [
    ["sessions", "--limit", "3"],            # no such flag
    ["errors", "--limit", "many"],           # not a number
    ["tools", "--by", "weekday"],            # not a choice
    ["no-such-command"],
])
def test_a_bad_argument_is_one_line_naming_it(args):
    result = threadline(*args)
    assert result.returncode == 2
    one_line_refusal(result, args[-1] if args[0] != "sessions" else "--limit", "--help")


@pytest.mark.parametrize("args", [*READS, ["reparse"]])  # `import` creates its database
def test_a_missing_database_is_one_line(tmp_path, args):
    result = threadline(*args, "--db", str(tmp_path / "none.db"))
    one_line_refusal(result, "no threadline database")
    assert not (tmp_path / "none.db").exists()


@pytest.mark.parametrize("args", READS + WRITES)
@pytest.mark.parametrize("kind", ["text", "sqlite"])
def test_another_programs_file_is_one_line_and_left_as_it_was(tmp_path, args, kind):
    foreign = tmp_path / "other.db"
    if kind == "text":
        foreign.write_text("notes, not a database\n")
    else:
        with sqlite3.connect(foreign) as conn:
            conn.execute("CREATE TABLE recipes (name TEXT)")
            conn.execute("INSERT INTO recipes VALUES ('soup')")
        conn.close()
    before = foreign.read_bytes()
    (tmp_path / "empty").mkdir()
    args = [a.format(folder=tmp_path / "empty") for a in args]
    result = threadline(*args, "--db", str(foreign))
    one_line_refusal(result, f"{foreign} is not a threadline database")
    assert foreign.read_bytes() == before  # no threadline tables added to someone's file
    assert sorted(p.name for p in tmp_path.iterdir()) == ["empty", "other.db"]


@pytest.mark.parametrize("args", [["sessions"], ["export"], ["config"]])
def test_a_reader_that_went_away_is_no_error_message(db, args):
    with subprocess.Popen([sys.executable, "-m", "cli", *args, "--db", str(db)],
                          stdout=subprocess.PIPE, stderr=subprocess.PIPE) as process:
        process.stdout.close()  # before anything is written: every write meets a closed pipe
        stderr = process.stderr.read().decode()
        assert process.wait(timeout=120) == 141  # 128 + SIGPIPE, as `cat` or `ls` would
    assert stderr == ""


def test_head_gets_the_first_line_and_nothing_else_is_said(db):
    shell = subprocess.run(["sh", "-c", '"$0" -m cli export --db "$1" | head -1',
                            sys.executable, str(db)], capture_output=True, text=True,
                           timeout=120)
    assert json.loads(shell.stdout)["session_id"].startswith("session-")
    assert shell.stderr == ""


def test_config_says_each_value_and_where_it_came_from(tmp_path):
    env = {**os.environ, "THREADLINE_WS_PORT": "9001", "THREADLINE_TOKEN": "s3cret-value"}
    env.pop("THREADLINE_HOST", None)
    result = threadline("config", "--db", str(tmp_path / "x.db"), "--json", env=env)
    assert result.returncode == 0, result.stderr
    rows = {r["name"]: r for r in json.loads(result.stdout)}
    assert set(rows) == {s.name for s in config.SETTINGS}
    assert (rows["db"]["value"], rows["db"]["source"]) == (str(tmp_path / "x.db"), "flag --db")
    assert (rows["ws_port"]["value"], rows["ws_port"]["source"]) == (
        "9001", "env THREADLINE_WS_PORT")
    assert (rows["host"]["value"], rows["host"]["source"]) == ("127.0.0.1", "default")
    assert "s3cret-value" not in result.stdout  # a secret is said to be set, never shown
    assert rows["token"]["source"] == "env THREADLINE_TOKEN"
    text = threadline("config", "--db", str(tmp_path / "x.db"), env=env).stdout
    assert "flag --db" in text and "env THREADLINE_WS_PORT" in text
    assert "s3cret-value" not in text


def test_config_rows_follow_the_resolution_order():
    rows = {r["name"]: r for r in config_rows(
        {"ws_port": 7000, "roots": None}, {"THREADLINE_WS_PORT": "9001",
                                           "THREADLINE_ROOTS": os.pathsep.join(["/a", "/b"])})}
    assert (rows["ws_port"]["value"], rows["ws_port"]["source"]) == ("7000", "flag --ws-port")
    assert (rows["roots"]["value"], rows["roots"]["source"]) == (
        os.pathsep.join(["/a", "/b"]), "env THREADLINE_ROOTS")
    assert rows["batch_lines"]["source"] == "default"
    assert rows["batch_lines"]["value"] == "250"
