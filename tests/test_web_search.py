"""The page's "search" request over the WebSocket protocol, answered from the store's Search
RPC: the whole pipeline on port 0 and a real WebSocket client speaking as the page does."""

from __future__ import annotations

import asyncio

from conftest import eventually, running_pipeline
from test_web_reads import Transcript, page_client, said, tool

from threadline.storage import search


def test_search_over_the_websocket_finds_hits_with_their_snippets(tmp_path):
    root = tmp_path / "projects"
    chat = Transcript(root / "-home-u-app" / "chat.jsonl", "cccc3333-chat", "/home/u/app")
    chat.write(chat.prompt(0, "why does the parser drop the last line?"),
               chat.answer(1, tool("toolu_1", "Bash", command="pytest tests/test_tail.py")),
               chat.result(2, "toolu_1", "1 failed: <b>test_tail</b>"),
               chat.answer(3, said("The parser waits for a newline.")))
    other = Transcript(root / "-home-u-web" / "other.jsonl", "dddd4444-other", "/home/u/web")
    other.write(other.prompt(10, "rename the stylesheet"))

    async def scenario():
        async with running_pipeline(tmp_path, [root]) as p:
            page = await page_client(p)
            assert "search" in (await page.ask("status"))["capabilities"]

            async def found(query: str, **fields):
                reply = await page.ask("search", query=query, **fields)
                return reply if reply.get("hits") else None
            reply = await eventually(lambda: found("parser"))
            assert reply["type"] == "search" and reply["more"] is False
            assert reply["recent_only"] is False and reply["expression"] == '"parser"'
            # A word in a prompt counts most: the question first, then the answer.
            prompt, answer = reply["hits"]
            assert (prompt["session"], prompt["project"], prompt["role"]) == (
                "cccc3333-chat", "/home/u/app", "user")
            assert (prompt["ordinal"], answer["ordinal"]) == (1, 4)
            assert prompt["columns"] == ["prompt"] and answer["columns"] == ["response"]
            assert prompt["timestamp"].startswith("2026-11-20T09:00:00")
            assert prompt["score"] < answer["score"]
            assert {"text": "parser", "highlighted": True} in prompt["snippet"]
            assert "".join(s["text"] for s in prompt["snippet"]) == (
                "why does the parser drop the last line?")
            # Snippets are the transcript's text as it is: markup stays characters.
            [result] = (await page.ask("search", query="tool:Bash test_tail in:tool_result")
                        )["hits"]
            assert "".join(s["text"] for s in result["snippet"]) == (
                "1 failed: <b>test_tail</b>")

            limited = await eventually(lambda: found("the", limit=1))
            assert len(limited["hits"]) == 1 and limited["more"] is True
            bad = await page.ask("search", query='"unbalanced')
            assert bad["type"] == "error" and bad["error"] == "invalid_request"
            assert "quote" in bad["message"]
            ambiguous = await page.ask("search", query="parser session:zz")
            assert ambiguous["error"] == "invalid_request"
            missing = await page.ask("search")
            assert missing["error"] == "invalid_field"
            over = await page.ask("search", query="x", limit=search.MAX_LIMIT + 1)
            assert over["error"] == "invalid_field"
            await page.ws.close()

    asyncio.run(scenario())
