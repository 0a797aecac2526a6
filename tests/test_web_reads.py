"""The page's reads over the WebSocket protocol, answered by the stream service from the
store and the analysis service: the whole pipeline on port 0 and a real WebSocket client
speaking as the page does (its own Origin, then an "auth" frame)."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from pathlib import Path

import orjson
from conftest import eventually, running_pipeline
from websockets.asyncio.client import connect

from services.stream import reads
from threadline import auth

START = datetime(2026, 11, 20, 9, 0, tzinfo=UTC)


def _stamp(at: float) -> str:
    return (START + timedelta(minutes=at)).isoformat(timespec="milliseconds").replace(
        "+00:00", "Z")


class Transcript:
    """Claude Code lines of one session, written the way Claude Code writes them; `fields`
    go into every line (a subagent's `isSidechain` and `agentId`)."""

    def __init__(self, path: Path, session: str, cwd: str, **fields):
        self.path, self.session, self.cwd = path, session, cwd
        self.fields = fields
        self.parent: str | None = None
        self.count = 0

    def _line(self, kind: str, at: float, **fields) -> bytes:
        self.count += 1
        uid = f"{self.path.stem}-{self.count:04d}"
        line = {"parentUuid": self.parent, "isSidechain": False, "userType": "external",
                "cwd": self.cwd, "sessionId": self.session, "version": "2.1.114",
                "type": kind, "uuid": uid, "timestamp": _stamp(at), **self.fields, **fields}
        self.parent = uid
        return orjson.dumps(line) + b"\n"

    def prompt(self, at: float, text: str) -> bytes:
        return self._line("user", at, message={"role": "user", "content": text})

    def answer(self, at: float, block: dict, model: str = "claude-opus-4-7",
               tokens: int = 1000) -> bytes:
        message_id = f"msg_{self.session}_{self.count}"
        return self._line("assistant", at, requestId="req_" + message_id, message={
            "id": message_id, "type": "message", "role": "assistant", "model": model,
            "content": [block], "stop_reason": "end_turn",
            "usage": {"input_tokens": tokens, "output_tokens": tokens // 4,
                      "cache_creation_input_tokens": tokens * 2,
                      "cache_read_input_tokens": tokens * 8}})

    def result(self, at: float, tool: str, text: str, error: bool = False,
               **fields) -> bytes:
        return self._line("user", at, message={"role": "user", "content": [
            {"type": "tool_result", "tool_use_id": tool, "content": text,
             "is_error": error}]}, **fields)

    def write(self, *lines: bytes) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with self.path.open("ab") as out:
            out.write(b"".join(lines))


def said(text: str) -> dict:
    return {"type": "text", "text": text}


def tool(ident: str, name: str, **arguments) -> dict:
    return {"type": "tool_use", "id": ident, "name": name, "input": arguments}



def write_two_sessions(root):
    first = Transcript(root / "-home-u-app" / "first.jsonl", "aaaa1111-first", "/home/u/app")
    first.write(first.prompt(0, "old question"), first.answer(1, said("old answer")))
    second = Transcript(root / "-home-u-web" / "second.jsonl", "bbbb2222-second",
                        "/home/u/web")
    second.write(
        second.prompt(60, "run the tests"),
        second.answer(61, tool("toolu_1", "Bash", command="pytest")),
        second.result(62, "toolu_1", "boom", error=True),
        second.answer(63, tool("toolu_2", "Bash", command="pytest -x")),
        second.result(64, "toolu_2", "ok"),
        second.answer(65, said("Fixed."), model="claude-sonnet-4-5"))
    return first, second


class Page:
    """A WebSocket client with the page's requests, answered by id."""

    def __init__(self, ws):
        self.ws = ws
        self.ids = 0
        self.changes: list[dict] = []

    async def ask(self, kind: str, **fields) -> dict:
        self.ids += 1
        await self.ws.send(orjson.dumps({"type": kind, "id": self.ids, **fields}).decode())
        while True:
            frame = orjson.loads(await asyncio.wait_for(self.ws.recv(), 10))
            if frame.get("id") == self.ids:
                return frame
            self.changes.append(frame)

    async def change(self) -> dict:
        """The next change frame (one that arrived during a request, or a new one)."""
        while not self.changes:
            self.changes.append(orjson.loads(await asyncio.wait_for(self.ws.recv(), 15)))
        return self.changes.pop(0)


async def page_client(p):
    port = p.stream.ws_port
    ws = await connect(f"ws://127.0.0.1:{port}/ws", origin=f"http://127.0.0.1:{port}",
                       max_size=None)
    page = Page(ws)
    token = auth.for_client(p.settings).token
    assert (await page.ask("auth", token=token))["type"] == "authenticated"
    return page


def test_sessions_messages_usage_and_tools_over_the_websocket(tmp_path):
    root = tmp_path / "projects"
    first, second = write_two_sessions(root)

    async def scenario():
        async with running_pipeline(tmp_path, [root]) as p:
            page = await page_client(p)
            status = await page.ask("status")
            assert {"sessions", "session_messages", "usage", "tools", "search"} <= set(
                status["capabilities"])

            async def both_stored():
                found = (await page.ask("sessions"))["sessions"]
                return found if sum(s["messages"] for s in found) == 8 else None
            sessions = await eventually(both_stored)
            # Most recent first, with what the list shows.
            assert [s["session"] for s in sessions] == ["bbbb2222-second", "aaaa1111-first"]
            latest = sessions[0]
            assert latest["project"] == "/home/u/web" and latest["project_name"] == "web"
            assert latest["first_timestamp"] < latest["last_timestamp"]
            # Models, tokens and cost per session: what the list fills in next.
            billed = {r["period"]: r for r in (await page.ask("usage", by="session"))["rows"]}
            assert billed["bbbb2222-second"]["models"] == ["claude-opus-4-7",
                                                           "claude-sonnet-4-5"]
            assert billed["bbbb2222-second"]["cost_usd"] > 0
            only = await page.ask("sessions", project="app")
            assert [s["session"] for s in only["sessions"]] == ["aaaa1111-first"]

            # Pages of a session, given by a prefix; then follow it from the last one read.
            read, after = [], 0
            while True:
                got = await page.ask("session_messages", session="bbbb", after=after, limit=4)
                assert got["session"] == "bbbb2222-second"
                read += got["messages"]
                after = got["messages"][-1]["sequence"]
                if not got["next_after"]:
                    break
            assert len(read) == 6
            assert [m["sequence"] for m in read] == sorted(m["sequence"] for m in read)
            call = read[1]["message"]["content"][0]
            assert (call["kind"], call["tool_name"], call["input"]) == (
                "tool_use", "Bash", {"command": "pytest"})
            assert read[2]["message"]["content"][0]["is_error"] is True
            subscribed = await page.ask("subscribe", session="bbbb2222-second", since=after)
            second.write(second.prompt(70, "and now?"))
            change = await page.change()
            while change["type"] != "message":  # the analysis of earlier lines may come first
                change = await page.change()
            assert change["subscription"] == subscribed["subscription"]
            assert change["message"]["text"] == "and now?"

            by_model = await page.ask("usage", by="model")
            assert [r["period"] for r in by_model["rows"]] == ["claude-opus-4-7",
                                                                "claude-sonnet-4-5"]
            assert by_model["total"]["input_tokens"] == sum(
                r["input_tokens"] for r in by_model["rows"])
            assert isinstance(by_model["total"]["total_tokens"], int)
            by_day = await page.ask("usage", by="day")
            assert [r["period"] for r in by_day["rows"]] == ["2026-11-20"]

            async def bash_counted():
                rows = (await page.ask("tools"))["rows"]
                return rows if rows and rows[0]["calls"] == 2 else None
            [bash] = await eventually(bash_counted)
            assert (bash["tool"], bash["errors"]) == ("Bash", 1)
            assert isinstance(bash["error_classes"], dict)

            missing = await page.ask("session_messages", session="zzzz-nothing")
            assert missing["type"] == "error" and missing["error"] == "not_found"
            bad = await page.ask("usage", by="fortnight")
            assert bad["error"] == "invalid_field"
            await page.ws.close()

    asyncio.run(scenario())


def test_pages_of_large_messages_end_early_and_still_cover_the_session(tmp_path, monkeypatch):
    root = tmp_path / "projects"
    big = Transcript(root / "-home-u-app" / "big.jsonl", "cccc3333-big", "/home/u/app")
    big.write(*(big.prompt(i, f"{i:03d} " + "x" * 3000) for i in range(12)))
    # A few messages' worth (each is over 6 KB of JSON: its text, and again as a block).
    monkeypatch.setattr(reads, "PAGE_BYTES", 15_000)

    async def scenario():
        async with running_pipeline(tmp_path, [root]) as p:
            page = await page_client(p)

            async def all_stored():
                sessions = (await page.ask("sessions"))["sessions"]
                return sessions and sessions[0]["messages"] == 12
            await eventually(all_stored)
            texts, after, pages = [], 0, 0
            while True:
                got = await page.ask("session_messages", session="cccc", after=after)
                pages += 1
                texts += [m["message"]["text"][:3] for m in got["messages"]]
                after = got["next_after"]
                if not after:
                    break
            assert texts == [f"{i:03d}" for i in range(12)]
            assert 2 < pages < 12
            await page.ws.close()

    asyncio.run(scenario())


def test_a_read_the_store_cannot_answer_is_an_error_frame_and_the_connection_stays(tmp_path):
    root = tmp_path / "projects"
    write_two_sessions(root)

    async def scenario():
        async with running_pipeline(tmp_path, [root]) as p:
            page = await page_client(p)
            await p.store.stop()
            failed = await page.ask("sessions")
            assert (failed["type"], failed["error"]) == ("error", "unavailable")
            assert (await page.ask("ping"))["type"] == "pong"
            await page.ws.close()

    asyncio.run(scenario())
