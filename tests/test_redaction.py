"""Secrets in transcripts: redacted from everything threadline serves, raw lines kept as they were.

The fake secrets are assembled from parts so that no complete key-shaped literal sits in the
repository (secret scanners would flag it).
"""

from __future__ import annotations

import asyncio
import os
import sqlite3
import subprocess
import sys
import uuid

import grpc
import orjson
import pytest
import websockets
from conftest import eventually, running_pipeline
from test_pipeline_live import subscribed

from threadline.redaction import PatternError, Redactor, parse_patterns
from threadline.v1 import store_pb2, store_pb2_grpc

KEY_LINE = "MIIEowIBAAKCAQEA7fake" + "FAKEfake0123456789abcdefABCDEFfakeFAKE0123456789ab"
PEM = "-----BEGIN " + "RSA PRIVATE KEY-----\n" + KEY_LINE + "\nQ29mZmVl\n" \
      "-----END RSA " + "PRIVATE KEY-----"
# kind -> the fake secret (`planted_text` puts it in a context where it is recognisable)
PLANTED = {
    "anthropic-key": "sk-ant-" + "api03-" + "Zq9fAKEfake0fake1fake2fake3fake4fake5fake6",
    "openai-key": "sk-" + "proj-" + "F4kef4kef4kef4kef4kef4kef4ke0123",
    "aws-access-key": "AKIA" + "Q3FAKEKEY2TEST7Z",
    "aws-secret-key": "wJalrXUtnFEMI/K7MDENG/" + "bPxRfiCYFAKEKEY1234",
    "github-token": "ghp_" + "F4ke0123456789abcdefFAKEfake01234567",
    "github-pat": "github_pat_" + "11FAKE0000_fakefakefakefakefake0123456789",
    "slack-token": "xoxb-" + "123456789012-" + "fakefakefake0",
    "slack-webhook": "https://hooks.slack.com/services/" + "T0FAKE/B0FAKE/"
                     + "fakefake0fake1fake2fake",
    "private-key": KEY_LINE,
    "jwt": "eyJhbGciOiJIUzI1NiJ9." + "eyJzdWIiOiJmYWtlLXVzZXIifQ." + "c2lnbmF0dXJlLWZha2UtZmFrZQ",
    "password": "hunter2" + "-fake-Pw9",
    "token": "tok" + "fake0123456789",
    "url-password": "s3cr3t" + "FakePw",
    "bearer-token": "Fake0bearer" + "Token0123456789ab",
}
CONTEXT = {
    "aws-secret-key": "aws_secret_access_key = {}",
    "private-key": "my key:\n" + PEM.replace(KEY_LINE, "{}"),
    "password": "export DB_PASSWORD={}",
    "token": "curl 'https://api.example.com/x?token={}&page=2'",
    "url-password": "DATABASE_URL=postgres://app:{}@db:5432/app",
    "bearer-token": "Authorization: Bearer {}",
}


def planted_text(kind: str) -> str:
    return CONTEXT.get(kind, "here it is: {} ok").format(PLANTED[kind])


def test_each_planted_kind_is_replaced_by_its_name():
    redactor = Redactor()
    for kind, secret in PLANTED.items():
        out = redactor.text(planted_text(kind))
        assert secret not in out, kind
        assert "[REDACTED:" in out, kind
    assert redactor.text(planted_text("github-pat")).count("[REDACTED:github-token]") == 1
    assert redactor.text("export DB_PASSWORD=x9") == "export DB_PASSWORD=[REDACTED:password]"
    assert redactor.text('{"api_key": "abc"}') == '{"api_key": "[REDACTED:secret]"}'
    assert redactor.text(planted_text("aws-secret-key")).endswith("[REDACTED:aws-secret-key]")


def test_short_values_are_redacted_and_arguments_passed_on_are_not():
    redactor = Redactor()
    assert redactor.text("password=d") == "password=[REDACTED:password]"
    assert redactor.text("login(password=password)") == "login(password=password)"


@pytest.mark.parametrize("kind", ["", "RSA ", "EC ", "ENCRYPTED ", "OPENSSH "])
def test_private_key_blocks_of_every_type(kind):
    block = f"-----BEGIN {kind}PRIVATE " + f"KEY-----\nQUJD\n-----END {kind}PRIVATE KEY-----"
    assert Redactor().text(f"a\n{block}\nb") == "a\n[REDACTED:private-key]\nb"
    public = "-----BEGIN PUBLIC KEY-----\nQUJD\n-----END PUBLIC KEY-----"
    assert Redactor().text(public) == public


def test_a_private_key_without_its_end_line_is_redacted_to_the_end():
    cut = "pasted:\n-----BEGIN OPENSSH " + "PRIVATE KEY-----\nb3BlbnNzaC1rZXktdjEAAAA\nAAAAB"
    assert Redactor().text(cut) == "pasted:\n[REDACTED:private-key]"


@pytest.mark.parametrize("text", [
    "commit 3f786850e387550fdab836ed7e6dc881de23001b, sha256 " + "ab" * 32,
    "session 0b6f8e0e-0c8a-4a3b-9a0e-1c2d3e4f5a6b and msg_01ABCdefGHIjklMNOpqrSTU",
    "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNkYPhfDwAChwGA60e6kgAAAABJRU5E"
    "rkJggg==",
    "def login(password: str, token: Optional[str] = None) -> bool:\n"
    "    if password == '':\n        password = getpass()\n"
    "    return check(password=password, token=os.environ['TOKEN'])",
    "Enter your password and API key below; the token count is 4096 (max_tokens=4096).",
    "print(f\"token: '{token}'\"); secret = ${SECRET}; password=<your password>",
    "task-12345678901234567890abcd and disk-usage, risk-based",
    "see https://example.com/a@b and user@example.com",
])
def test_ordinary_text_is_left_alone(text):
    assert Redactor().text(text) == text


def test_tool_input_json_stays_json_and_loses_secret_values():
    raw = orjson.dumps({"command": "curl -H 'Authorization: Bearer "
                        + PLANTED["bearer-token"] + "'", "password": "plain",
                        "pwd": "/home/u", "nested": [{"api_key": "k"}]})
    out = orjson.loads(Redactor().json(raw))
    assert out == {"command": "curl -H 'Authorization: Bearer [REDACTED:bearer-token]'",
                   "password": "[REDACTED:password]", "pwd": "/home/u",
                   "nested": [{"api_key": "[REDACTED:secret]"}]}
    ordinary = b'{"command":"ls -la","path":"/tmp"}'
    assert Redactor().json(ordinary) is ordinary


def test_excerpt_redacts_a_secret_cut_by_the_limit():
    line = b'{"a": "' + b"x" * 180 + b" " + PLANTED["anthropic-key"].encode() + b'"'
    out = Redactor().excerpt(line, 200)
    assert len(out) <= 200 and b"sk-ant" not in out and b"Zq9f" not in out


def test_extra_patterns_from_a_file():
    patterns = parse_patterns("# ours\nACME-[0-9]{6}\n\n(?i)internal-only\n")
    out = Redactor(patterns).text("ticket ACME-123456 is Internal-Only")
    assert out == "ticket [REDACTED:custom] is [REDACTED:custom]"
    with pytest.raises(PatternError, match="f:2: not a regular expression"):
        parse_patterns("ok\n([unclosed\n", "f")


# --- end to end ----------------------------------------------------------------------------

def _lines(session: str) -> list[bytes]:
    """For each kind: a prompt, a thinking block and a tool call, a tool result and a summary
    holding the secret; then one malformed line holding all of them (a parse error)."""
    out = []
    for kind in PLANTED:
        text = planted_text(kind)
        ids = [str(uuid.uuid4()) for _ in range(3)]
        base = {"isSidechain": False, "sessionId": session, "cwd": "/home/u/app",
                "version": "2.1.39", "timestamp": "2026-11-01T10:00:00.000Z"}
        out.append({**base, "type": "user", "uuid": ids[0], "parentUuid": None,
                    "message": {"role": "user", "content": text}})
        out.append({**base, "type": "assistant", "uuid": ids[1], "parentUuid": ids[0],
                    "message": {"role": "assistant", "model": "claude-x", "id": "msg_" + ids[1],
                                "content": [{"type": "thinking", "thinking": text},
                                            {"type": "tool_use", "id": "tu" + ids[1],
                                             "name": "Bash", "input": {"command": text}}]}})
        out.append({**base, "type": "user", "uuid": ids[2], "parentUuid": ids[1],
                    "message": {"role": "user", "content": [
                        {"type": "tool_result", "tool_use_id": "tu" + ids[1], "content": text}]}})
        out.append({"type": "summary", "summary": text, "leafUuid": ids[2]})
    lines = [orjson.dumps(o) for o in out]
    for kind in PLANTED:  # malformed: not JSON, the secret within the excerpt's reach
        lines.append(b'{"type": "user", oops ' + planted_text(kind).encode())
    return lines


def _served_columns(db) -> str:
    """Every value of every table of the database except the raw lines, as one text."""
    con = sqlite3.connect(db)
    try:
        parts = []
        for (table,) in con.execute("SELECT name FROM sqlite_master WHERE type = 'table'"):
            columns = [c[1] for c in con.execute(f"PRAGMA table_info('{table}')")
                       if not (table == "messages" and c[1] == "raw")]
            for row in con.execute(f"SELECT {', '.join(columns)} FROM '{table}'"):
                for value in row:
                    if isinstance(value, bytes):
                        value = value.decode("utf-8", "replace")
                    parts.append(str(value))
        return "\n".join(parts)
    finally:
        con.close()


def _threadline(*args: str) -> str:
    result = subprocess.run([sys.executable, "-m", "cli", *args], capture_output=True,
                            timeout=120, check=True)
    return result.stdout.decode() + result.stderr.decode()


def test_planted_secrets_are_served_nowhere_but_kept_in_raw_lines(tmp_path):
    root = tmp_path / "projects"
    transcript = root / "-home-u-app" / "s-secret.jsonl"
    transcript.parent.mkdir(parents=True)
    lines = _lines("s-secret")
    transcript.write_bytes(b"\n".join(lines) + b"\n")
    db = tmp_path / "threadline.db"
    frames: list[bytes] = []
    grpc_replies: list[str] = []

    async def scenario():
        async with running_pipeline(tmp_path, [root]) as p:
            async with websockets.connect(p.ws_url, additional_headers=p.ws_headers) as ws:
                await subscribed(ws, since=0)

                def stored():
                    con = sqlite3.connect(db)
                    try:
                        return (con.execute("SELECT count(*) FROM messages").fetchone()[0]
                                == 4 * len(PLANTED) and con.execute(
                                    "SELECT count(*) FROM parse_errors").fetchone()[0]
                                >= len(PLANTED))  # the key block's lines are errors each
                    finally:
                        con.close()
                await eventually(stored, timeout=60)

                async def drain():
                    while True:
                        frames.append(await asyncio.wait_for(ws.recv(), 1.5))
                with pytest.raises(TimeoutError):
                    await drain()

            async with grpc.aio.insecure_channel(p.store_addr) as channel:
                stub = store_pb2_grpc.StoreServiceStub(channel)
                found = await stub.GetSessionMessages(
                    store_pb2.GetSessionMessagesRequest(session_id="s-secret"))
                errors = await stub.ListParseErrors(store_pb2.ListParseErrorsRequest())
                assert len(found.messages) == 4 * len(PLANTED) and errors.errors
                grpc_replies.append(str(found) + str(errors))

    asyncio.run(scenario())
    assert any(b"[REDACTED:" in (f if isinstance(f, bytes) else f.encode()) for f in frames)
    served = {
        "database": _served_columns(db),
        "grpc": grpc_replies[0],
        "websocket": "\n".join(f if isinstance(f, str) else f.decode() for f in frames),
        "export": _threadline("export", "--db", str(db)),
        "errors": _threadline("errors", "--db", str(db), "--json")
                  + _threadline("errors", "--db", str(db)),
        "sessions": _threadline("sessions", "--db", str(db), "--json"),
        "analyze": _threadline("analyze", "--db", str(db), "s-secret", "--json"),
        "threads": _threadline("threads", "--db", str(db), "s-secret", "--json"),
    }
    for kind, secret in PLANTED.items():
        # JSON output escapes "/" and newlines differently; look for a distinctive part too.
        needles = {secret, secret[-12:]}
        for where, text in served.items():
            for needle in needles:
                assert needle not in text, f"{kind} served by {where}"
    con = sqlite3.connect(db)
    raws = b"\n".join(r for (r,) in con.execute("SELECT raw FROM messages"))
    con.close()
    for line in lines[:4 * len(PLANTED)]:  # well-formed lines are kept byte for byte
        assert line in raws
    # reparse derives the same redacted text again from the raw lines
    _threadline("reparse", "--db", str(db))
    after = _served_columns(db)
    for secret in PLANTED.values():
        assert secret not in after and secret[-12:] not in after


def test_reparse_redacts_text_stored_before_redaction_existed(tmp_path):
    """A database filled by an earlier version holds secrets in its text columns; `threadline
    reparse` derives the text again from the raw lines, redacted, with the user's patterns."""
    from store_support import batch, message, running_store, write

    secret = PLANTED["github-token"]
    text = f"use {secret} for ACME-123456"
    raw = orjson.dumps({"type": "user", "uuid": "u1", "sessionId": "s1", "parentUuid": None,
                        "message": {"role": "user", "content": text}})
    db = tmp_path / "old.db"

    async def fill():
        async with running_store(db) as (_run, stub):
            await write(stub, [batch(1, [message("u1", text=text, raw=raw)])])
    asyncio.run(fill())
    patterns = tmp_path / "patterns.txt"
    patterns.write_text("ACME-[0-9]{6}\n")
    subprocess.run([sys.executable, "-m", "cli", "reparse", "--db", str(db)],
                   check=True, capture_output=True, timeout=120,
                   env={**os.environ, "THREADLINE_REDACT_PATTERNS": str(patterns)})
    con = sqlite3.connect(db)
    stored_text, content, stored_raw = con.execute(
        "SELECT text, content_json, raw FROM messages").fetchone()
    con.close()
    assert stored_text == "use [REDACTED:github-token] for [REDACTED:custom]"
    assert secret.encode() not in bytes(content) and stored_raw == raw


def test_a_bad_extra_pattern_stops_reparse_with_one_line(tmp_path):
    patterns = tmp_path / "patterns.txt"
    patterns.write_text("([unclosed\n")
    result = subprocess.run(
        [sys.executable, "-m", "cli", "reparse", "--db", str(tmp_path / "x.db")],
        capture_output=True, timeout=120, text=True,
        env={**os.environ, "THREADLINE_REDACT_PATTERNS": str(patterns)})
    assert result.returncode == 1
    assert result.stderr == (f"threadline reparse: {patterns}:1: not a regular expression "
                             "(unterminated character set at position 1)\n")


def test_a_bad_extra_pattern_stops_import_before_any_service_starts(tmp_path):
    patterns = tmp_path / "patterns.txt"
    patterns.write_text("# ours\n\nok\n(?P<\n")
    (tmp_path / "p").mkdir()
    result = subprocess.run(
        [sys.executable, "-m", "cli", "import", "--db", str(tmp_path / "t.db"),
         str(tmp_path / "p")], capture_output=True, timeout=120, text=True,
        env={**os.environ, "THREADLINE_REDACT_PATTERNS": str(patterns)})
    assert result.returncode == 2
    assert result.stderr.startswith(f"threadline import: {patterns}:4: not a regular expression")
    assert not (tmp_path / "t.db").exists()
