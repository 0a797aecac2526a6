"""Full-text search: hits compared with a brute-force scan of the same stored records, the
index kept in step with writes, rewrites and deletes, old databases, and the Search RPC."""

from __future__ import annotations

import asyncio
import random
import sqlite3
import unicodedata
from pathlib import Path

import grpc
import orjson
import pytest
from hypothesis import given
from hypothesis import strategies as st
from store_support import batch, message, running_store, write

from threadline.storage import names, readonly, search
from threadline.storage.errors import InvalidArgument
from threadline.storage.search_query import COLUMNS, Query, QueryError, Term, is_token_char, parse
from threadline.v1 import common_pb2 as pb
from threadline.v1 import store_pb2 as spb

WORDS = ("alpha beta gamma delta parser parsing parsed store stream café über naïve quick "
         "brown fox near and or not commit index x86_64 file_path").split()
SESSIONS = {  # session -> cwd (its project); two share the prefix "aaaa"
    "aaaa1111-0000-4000-8000-000000000001": "/work/alpha",
    "aaaa2222-0000-4000-8000-000000000002": "/work/alpha",
    "bbbb3333-0000-4000-8000-000000000003": "/work/beta-app",
    "cccc4444-0000-4000-8000-000000000004": "/work/beta-app",
}
TOOLS = ("Bash", "Read", "Grep")
MODELS = ("claude-opus-4-6", "claude-sonnet-4-5")


# --- the records -------------------------------------------------------------------------------

def _words(rng: random.Random, n: int) -> str:
    return " ".join(rng.choice(WORDS) for _ in range(n))


def _block(kind: int, **fields) -> pb.ContentBlock:
    return pb.ContentBlock(kind=kind, **fields)


def _msg(key: str, session: str, n: int, role: int, blocks: list[pb.ContentBlock], ts: str,
         model: str = "") -> pb.Message:
    m = message(key, session=session, project=SESSIONS[session].strip("/").replace("/", "-"),
                path=f"/t/{session}.jsonl", offset=n * 100, line=n + 1, ts=ts,
                cwd=SESSIONS[session])
    m.role = role
    m.type = "user" if role == pb.ROLE_USER else "assistant"
    m.model = model
    del m.content[:]
    m.content.extend(blocks)
    m.text = "\n".join(b.text for b in blocks if b.kind == pb.BLOCK_KIND_TEXT)
    return m


def corpus_batches(seed: int = 5) -> list[pb.Batch]:
    """Sessions of prompts, responses (some with thinking), tool calls and their results,
    over ten days, in one batch per session."""
    rng = random.Random(seed)
    batches = []
    for b, session in enumerate(SESSIONS):
        msgs: list[pb.Message] = []
        calls: list[pb.ToolCall] = []
        for turn in range(12):
            day, n = 1 + (b * 12 + turn) % 10, len(msgs)
            ts = f"2025-01-{day:02d}T{10 + turn % 10:02d}:{turn:02d}:00Z"
            prompt = _words(rng, rng.randint(2, 12))
            msgs.append(_msg(f"{session}-p{turn}", session, n, pb.ROLE_USER,
                             [_block(pb.BLOCK_KIND_TEXT, text=prompt)], ts))
            reply = [_block(pb.BLOCK_KIND_TEXT, text=_words(rng, rng.randint(3, 20)))]
            if rng.random() < 0.5:
                reply.insert(0, _block(pb.BLOCK_KIND_THINKING, text=_words(rng, 15)))
            tool, use_id = rng.choice(TOOLS), f"toolu_{session[:8]}_{turn}"
            reply.append(_block(pb.BLOCK_KIND_TOOL_USE, tool_use_id=use_id, tool_name=tool,
                                tool_input_json=orjson.dumps({"command": _words(rng, 4)})))
            msgs.append(_msg(f"{session}-r{turn}", session, n + 1, pb.ROLE_ASSISTANT, reply,
                             ts.replace(":00Z", ":10Z"), rng.choice(MODELS)))
            msgs.append(_msg(f"{session}-t{turn}", session, n + 2, pb.ROLE_USER,
                             [_block(pb.BLOCK_KIND_TOOL_RESULT, tool_use_id=use_id,
                                     text=_words(rng, rng.randint(1, 30)))],
                             ts.replace(":00Z", ":20Z")))
            calls.append(pb.ToolCall(tool_use_id=use_id, session_id=session, name=tool,
                                     use_message_key=f"{session}-r{turn}", has_use=True,
                                     result_message_key=f"{session}-t{turn}", has_result=True))
        # Two prompts with the same text: equal scores, the later one ranks first.
        for i, ts in enumerate(("2025-02-01T00:00:00Z", "2025-02-02T00:00:00Z")):
            msgs.append(_msg(f"{session}-twin{i}", session, len(msgs), pb.ROLE_USER,
                             [_block(pb.BLOCK_KIND_TEXT, text=f"twinword {session[:4]}")], ts))
        batches.append(batch(b + 1, msgs, path=f"/t/{session}.jsonl", offset=len(msgs) * 100,
                             tool_calls=calls, project=msgs[0].project_key))
    return batches


def build(db: Path, batches: list[pb.Batch]) -> None:
    async def main():
        async with running_store(db) as (_run, stub):
            await write(stub, batches)

    asyncio.run(main())


@pytest.fixture(scope="module")
def db(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("search") / "t.db"
    build(path, corpus_batches())
    return path


def run_search(db: Path, text: str, limit: int = search.MAX_LIMIT) -> search.SearchResult:
    engine = readonly.open_readonly(db)
    try:
        with engine.connect() as conn:
            return search.search(conn, text, limit)
    finally:
        engine.dispose()


# --- the brute-force scan ----------------------------------------------------------------------

def tokens(text: str) -> list[str]:
    """unicode61 remove_diacritics 2, written out: runs of letters, digits and private-use
    characters, lower-cased, accents removed."""
    out, word = [], []
    for ch in text + " ":
        if is_token_char(ch):
            folded = "".join(c for c in unicodedata.normalize("NFD", ch)
                             if unicodedata.category(c) != "Mn")
            word.append(folded.lower())
        elif word:
            out.append("".join(word))
            word = []
    return out


def stored(db: Path) -> list[dict]:
    with sqlite3.connect(db) as conn:
        conn.row_factory = sqlite3.Row
        rows = [dict(r) for r in conn.execute(
            "SELECT seq, key, role, session_id, project_key, model, timestamp, content_json "
            "FROM messages")]
    names_by_id = {}
    for row in rows:
        blocks = orjson.loads(row["content_json"])
        for b in blocks:
            if b["kind"] == "tool_use":
                names_by_id[b["tool_use_id"]] = b["tool_name"]
        columns: dict[str, list[str]] = {c: [] for c in COLUMNS}
        for b in blocks:
            kind = b["kind"]
            if kind == "text":
                column = "prompt" if row["role"] == "user" else "response"
                columns[column] += tokens(b.get("text", ""))
            elif kind == "thinking":
                columns["thinking"] += tokens(b.get("text", ""))
            elif kind in ("tool_use", "server_tool_use"):
                columns["tool_input"] += tokens(b.get("tool_input_json", ""))
            elif kind == "tool_result":
                columns["tool_result"] += tokens(b.get("text", ""))
        row["columns"] = columns
        row["blocks"] = blocks
    for row in rows:
        row["tools"] = {(b.get("tool_name") or names_by_id.get(b.get("tool_use_id"), "")).lower()
                        for b in row["blocks"] if b["kind"] in ("tool_use", "tool_result")}
    return rows


def _term_in(term: Term, words: list[str]) -> bool:
    want = tokens(term.text)
    for i in range(len(words) - len(want) + 1):
        here = words[i:i + len(want)]
        if here[:-1] == want[:-1] and (here[-1].startswith(want[-1]) if term.prefix
                                        else here[-1] == want[-1]):
            return True
    return False


def brute_force(db: Path, query: Query) -> set[str]:
    engine = readonly.open_readonly(db)
    try:
        with engine.connect() as conn:
            project = names.resolve_project(conn, query.project)
            session = names.resolve_session(conn, query.session)
    finally:
        engine.dispose()
    found = set()
    for row in stored(db):
        where = query.columns or COLUMNS
        if not all(any(_term_in(t, row["columns"][c]) for c in where) for t in query.terms):
            continue
        if any(any(_term_in(t, row["columns"][c]) for c in COLUMNS) for t in query.excluded):
            continue
        if query.project and row["project_key"] != project:
            continue
        if query.session and row["session_id"] != session:
            continue
        if query.roles and row["role"] not in query.roles:
            continue
        if query.tool and query.tool.lower() not in row["tools"]:
            continue
        if query.model and query.model.lower() not in row["model"].lower():
            continue
        if query.since and row["timestamp"][:10] < query.since.isoformat():
            continue
        if query.until and row["timestamp"][:10] > query.until.isoformat():
            continue
        found.add(row["key"])
    return found


def assert_like_brute_force(db: Path, text: str) -> search.SearchResult:
    result = run_search(db, text)
    assert not result.more
    expected = brute_force(db, parse(text))
    assert {h.key for h in result.hits} == expected, (text, result.expression)
    scores = [h.score for h in result.hits]
    assert scores == sorted(scores)
    return result


# --- the tests ---------------------------------------------------------------------------------

QUERIES = [
    "alpha", "alpha beta", "ALPHA Beta", '"quick brown"', '"brown quick fox"', "pars*",
    '"quick bro"*', "alpha -beta", 'alpha -"beta gamma"', "parser -parsing -parsed",
    "cafe", "café", "uber naive", "x86_64", '"x86 64"', "file_path", '"file path" commit',
    "role:user alpha", "role:assistant,user gamma", "role:tool alpha",
    "project:/work/alpha stream", "project:beta-app stream", "session:bbbb3333 index",
    "session:cccc4444-0000-4000-8000-000000000004 fox", "tool:bash commit", "tool:GREP near",
    "model:opus delta", "model:SONNET delta", "since:2025-01-05 alpha", "until:2025-01-03 alpha",
    "since:2025-01-03 until:2025-01-04 beta", "in:thinking fox", "in:tool_input command",
    "in:prompt,tool_result quick", "in:results -alpha beta", "command", "twinword",
]


@pytest.mark.parametrize("text", QUERIES)
def test_hits_are_those_of_a_brute_force_scan(db, text):
    result = assert_like_brute_force(db, text)
    if text not in ("role:tool alpha", "\"brown quick fox\""):
        assert result.hits, text  # every query here finds something: the comparison counts


HOSTILE = [
    "NEAR(alpha beta)", "NEAR(alpha", "alpha AND OR NOT beta", "AND", "not", "{prompt}: alpha",
    "prompt: alpha", "alpha:beta", "^alpha", "alpha* *", "*alpha", "alpha**", "- alpha",
    "alpha -", "col:umn near", "'alpha'", "alpha \"\" beta", "(alpha)", "alpha + beta",
    "alpha OR", "-project:x alpha", "x86_64*", "\\alpha", "alpha\x00beta",
]


@pytest.mark.parametrize("text", HOSTILE)
def test_syntax_in_a_query_is_read_as_text(db, text):
    assert_like_brute_force(db, text)


@pytest.mark.parametrize("text, says", [
    ('"alpha', "unbalanced quote"), ('alpha "', "unbalanced quote"),
    ('alpha"', "space before the quote"),
    ('"alpha"beta', "space after the closing quote"), ('alpha"beta"', "space before the quote"),
    ("-alpha", "nothing to search for"), ("project:x", "nothing to search for"),
    ("***", "nothing to search for"), ("", "nothing to search for"),
    ("role:robot alpha", "role:robot"), ("in:body alpha", "in:body"),
    ("since:yesterday alpha", "expected a date"), ("project: alpha", "needs a value"),
    ("role:user role:assistant alpha", "given twice"),
    ("since:2025-02-01 until:2025-01-01 alpha", "is after"),
    ("session:aaaa alpha", "ambiguous session"), ("session:aa alpha", "too short"),
])
def test_a_query_that_cannot_be_read_is_a_clean_error(db, text, says):
    with pytest.raises(InvalidArgument, match=says):
        run_search(db, text)


_SYNTAX = st.sampled_from(['"', "*", "-", ":", "(", ")", "{", "}", "^", "NEAR", "AND", "OR",
                           "NOT", " ", "alpha", "beta", "quick", "role:", "in:", "user",
                           "prompt", "é", "_", "+", "'"])


@given(st.lists(_SYNTAX, min_size=1, max_size=8).map("".join))
def test_any_query_is_hits_like_the_scan_or_a_query_error(db, text):
    try:
        query = parse(text)
    except QueryError:
        with pytest.raises(QueryError):
            run_search(db, text)
        return
    assert {h.key for h in run_search(db, text).hits} == brute_force(db, query)


def test_equal_scores_put_the_latest_first(db):
    hits = run_search(db, "twinword bbbb").hits
    assert [h.key.rsplit("-", 1)[1] for h in hits] == ["twin1", "twin0"]
    assert hits[0].score == hits[1].score


def test_a_hit_says_where_it_is_and_highlights_the_words(db):
    hit = run_search(db, "twinword cccc session:cccc4444").hits[0]
    assert hit.session_id == "cccc4444-0000-4000-8000-000000000004"
    assert hit.project_key == "/work/beta-app"
    assert (hit.role, hit.timestamp) == ("user", "2025-02-02T00:00:00Z")
    assert hit.ordinal == 12 * 3 + 2  # the last of its session
    assert hit.columns == ["prompt"]
    assert hit.snippet == [("twinword", True), (" ", False), ("cccc", True)]
    for hit in run_search(db, "pars* role:assistant", limit=5).hits:
        marked = [text for text, lit in hit.snippet if lit]
        assert marked and all(t.lower().startswith("pars") for t in marked)
        assert set(hit.columns) <= {"response", "thinking", "tool_input"}


def test_the_limit_and_more(db):
    every = run_search(db, "alpha").hits
    first = run_search(db, "alpha", limit=3)
    assert [h.key for h in first.hits] == [h.key for h in every[:3]] and first.more
    with pytest.raises(InvalidArgument, match="limit"):
        run_search(db, "alpha", limit=0)


def _index_rows(db: Path) -> int:
    with sqlite3.connect(db) as conn:
        conn.execute(f"INSERT INTO {search.TABLE} ({search.TABLE}) VALUES ('integrity-check')")
        return conn.execute(f"SELECT count(*) FROM {search.TABLE}_docsize").fetchone()[0]


def test_a_resent_batch_is_not_indexed_twice(tmp_path):
    db = tmp_path / "t.db"
    batches = corpus_batches()
    build(db, batches[:2])
    build(db, batches[:3])  # the first two again, in a new store
    assert _index_rows(db) == len(stored(db)) == 3 * (12 * 3 + 2)
    assert [h.key for h in run_search(db, "twinword session:aaaa1111").hits] == [
        "aaaa1111-0000-4000-8000-000000000001-twin1",
        "aaaa1111-0000-4000-8000-000000000001-twin0"]
    assert_like_brute_force(db, "alpha -beta")


def test_rewritten_and_deleted_rows_leave_the_index(tmp_path):
    """A reparse rewrites content, a migration may drop rows: the triggers keep up."""
    db = tmp_path / "t.db"
    build(db, corpus_batches()[:1])
    key = "aaaa1111-0000-4000-8000-000000000001-twin0"
    with sqlite3.connect(db) as conn:
        conn.execute("UPDATE messages SET content_json = ? WHERE key = ?",
                     (orjson.dumps([{"kind": "thinking", "text": "rewritten zebra"}]), key))
        conn.execute("DELETE FROM messages WHERE key LIKE '%-twin1'")
    (hit,) = run_search(db, "zebra").hits
    assert (hit.key, hit.columns) == (key, ["thinking"])
    assert run_search(db, "twinword").hits == []
    assert _index_rows(db) == len(stored(db))
    assert_like_brute_force(db, "alpha -beta")


def test_an_old_database_is_indexed_once_when_opened(tmp_path):
    db = tmp_path / "t.db"
    batches = corpus_batches()
    build(db, batches[:2])
    with sqlite3.connect(db) as conn:  # as a version without search left it
        for trigger in ("ad", "au"):
            conn.execute(f"DROP TRIGGER {search.TABLE}_{trigger}")
        conn.execute(f"DROP TABLE {search.TABLE}")
    with pytest.raises(search.SearchUnavailable, match="no search index yet"):
        run_search(db, "alpha")  # read before any store opened it: said, not "no match"
    build(db, batches[:3])  # a store opening it indexes what is there, then what comes
    assert _index_rows(db) == len(stored(db))
    for text in ("alpha", "twinword -aaaa2222", "session:bbbb3333 beta"):
        assert_like_brute_force(db, text)


def test_rebuild_gives_the_same_index(tmp_path):
    db = tmp_path / "t.db"
    build(db, corpus_batches()[:2])
    before = run_search(db, "alpha beta")
    from sqlalchemy import create_engine

    engine = create_engine(f"sqlite:///{db}")
    with engine.begin() as conn:
        assert search.rebuild(conn) == len(stored(db))
    engine.dispose()
    assert run_search(db, "alpha beta") == before


def test_search_over_grpc(db):
    async def main():
        async with running_store(db) as (_run, stub):
            found = await stub.Search(spb.SearchRequest(query="twinword session:bbbb3333"))
            assert [h.key.rsplit("-", 1)[1] for h in found.hits] == ["twin1", "twin0"]
            hit = found.hits[0]
            assert (hit.session_id, hit.project_key, hit.role, hit.ordinal) == (
                "bbbb3333-0000-4000-8000-000000000003", "/work/beta-app", "user", 38)
            assert [(p.text, p.highlighted) for p in hit.snippet] == [
                ("twinword", True), (" bbbb", False)]
            assert list(hit.columns) == ["prompt"] and hit.sequence > 0
            assert found.expression == '"twinword"' and not found.more
            some = await stub.Search(spb.SearchRequest(query="alpha", limit=2))
            assert len(some.hits) == 2 and some.more
            for bad, says in (('"alpha', "unbalanced quote"), ("alpha", "limit")):
                with pytest.raises(grpc.aio.AioRpcError) as caught:
                    await stub.Search(spb.SearchRequest(query=bad,
                                                        limit=501 if says == "limit" else 0))
                assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
                assert says in caught.value.details()

    asyncio.run(main())


_BLOCKS = st.lists(st.fixed_dictionaries(
    {"kind": st.sampled_from(["text", "thinking", "tool_use", "server_tool_use", "tool_result",
                              "image", "other"])},
    optional={"text": st.text(max_size=20), "tool_input_json": st.text(max_size=20),
              "tool_name": st.sampled_from(["Bash", "Read"])}), max_size=5)


@given(st.sampled_from(["user", "assistant", "system", ""]), _BLOCKS)
def test_the_writer_indexes_the_texts_the_sql_would(role, blocks):
    """The writer splits texts in Python; removal and snippets split them in SQL: the two
    must agree to the character, or a rewritten row would leave words behind."""
    content = orjson.dumps(blocks)
    with sqlite3.connect(":memory:") as conn:
        in_sql = conn.execute(
            f"SELECT {search._column_sql('m', 'j')} FROM (SELECT ? AS role, ? AS content_json)"
            " AS m LEFT JOIN json_each(CAST(m.content_json AS TEXT)) AS j",
            (role, content)).fetchone()
    assert search.indexed_texts(role, content) == in_sql


def test_a_very_common_query_ranks_its_most_recent_matches(db, monkeypatch):
    monkeypatch.setattr(search, "CANDIDATES", 5)
    for text in ("alpha", "alpha session:bbbb3333", "beta role:assistant"):
        result = run_search(db, text, limit=3)
        seq_of = {r["key"]: r["seq"] for r in stored(db)}
        expected = set(sorted(brute_force(db, parse(text)), key=seq_of.__getitem__)[-5:])
        assert result.recent_only and result.more
        assert {h.key for h in result.hits} <= expected and len(result.hits) == 3
        everything = run_search(db, text, limit=5)
        assert {h.key for h in everything.hits} == expected


def test_a_batch_that_fails_leaves_nothing_in_the_index(tmp_path):
    """Batches are committed in groups, the index fed once per group: only the batches that
    were stored are indexed."""
    from services.store import rows
    from services.store.writer import WriteBatch, Writer
    from threadline.storage.errors import StaleAnalysis

    def row(key: str, text: str) -> dict:
        return rows.message_row(message(key, text=text, offset=len(key)))

    db = tmp_path / "t.db"
    writer = Writer(db)
    writer.start()

    async def main():
        kept = writer.submit(WriteBatch(1, messages=[row("k1", "kept words")]))
        # Refused: it follows an analysis checkpoint that is not the stored one.
        refused = writer.submit(WriteBatch(2, messages=[row("k2", "refused words")],
                                           analysed_through=9, analysed_after=5))
        also = writer.submit(WriteBatch(3, messages=[row("k3", "also kept")]))
        await kept
        with pytest.raises(StaleAnalysis):
            await refused
        await also

    try:
        asyncio.run(main())
    finally:
        writer.stop()
    assert [h.key for h in run_search(db, "kept").hits] == ["k3", "k1"]
    assert run_search(db, "refused").hits == []
    assert _index_rows(db) == len(stored(db)) == 2
