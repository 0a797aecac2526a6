"""The web page in real Chromium against a live system on free ports: the session list,
a conversation that grows live as its transcript file does, the usage charts, search with a
hit followed into its conversation, and text from transcripts shown as text, never run as
markup.

Debian's `chromium` (installed by `make browser`) driven by Playwright; without
/usr/bin/chromium these tests are skipped, saying so. On failure a screenshot of the page is
saved under the test's temporary folder. With THREADLINE_WEB_SCREENSHOTS=DIR each view is
also saved there (how docs/images/ is made).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
from pathlib import Path

import pytest
from conftest import eventually, running_pipeline
from test_web_reads import Transcript, said, tool

from threadline import auth

CHROMIUM = Path("/usr/bin/chromium")
pytestmark = [
    pytest.mark.skipif(not CHROMIUM.exists(),
                       reason="no /usr/bin/chromium: run `make browser` (apt-get install "
                              "chromium) to run the browser tests"),
    pytest.mark.timeout(180),
]
playwright_api = pytest.importorskip("playwright.async_api")

XSS_PROMPT = ('<script>window.__xss = 1</script><img src=x onerror="window.__xss = 2">'
              ' is this escaped?')
def write_history(root: Path) -> Transcript:
    """Two older sessions over several days, and the one the tests watch."""
    older = Transcript(root / "-home-u-site" / "older.jsonl", "older-session", "/home/u/site")
    for day in range(4):
        at = day * 24 * 60 - 5 * 24 * 60
        older.write(older.prompt(at, f"day {day}: tidy the stylesheet"),
                    older.answer(at + 1, tool(f"toolu_o{day}", "Edit", file_path="site.css"),
                                 model="claude-sonnet-4-5", tokens=4000 + 1500 * day),
                    older.result(at + 2, f"toolu_o{day}", "edited", error=day == 2),
                    older.answer(at + 3, said("Done."), model="claude-sonnet-4-5"))
    watched = Transcript(root / "-home-u-app" / "watched.jsonl", "watched-session",
                         "/home/u/app")
    watched.write(
        watched.prompt(0, "Why does the parser drop the last line?"),
        watched.answer(1, {"type": "thinking", "thinking": "Look at the tail handling.",
                           "signature": "x"}),
        watched.answer(2, tool("toolu_1", "Bash", command="uv run pytest tests/test_parser.py")),
        watched.result(3, "toolu_1", "1 failed, 41 passed"),
        watched.answer(4, tool("toolu_2", "Read", file_path="services/ingest/parser.py")),
        watched.result(5, "toolu_2", "def parse(line): ..."),
        watched.answer(6, said("The last line has no newline, so it waits for more bytes.")),
        watched.prompt(8, XSS_PROMPT),
        watched.answer(9, said("<b>Yes</b>: markup in a transcript is shown as text.")),
        watched.answer(10, tool("toolu_3", "Agent", description="find the tail handling",
                                prompt="Where is the last line handled?")))
    helper = Transcript(root / "-home-u-app" / "watched-session" / "subagents"
                        / "agent-a5e1c0de.jsonl", "watched-session", "/home/u/app",
                        isSidechain=True, agentId="a5e1c0de")
    helper.write(helper.prompt(10.1, "Where is the last line handled?"),
                 helper.answer(10.5, said("In the tail reader, after 3 s of quiet.")))
    watched.write(watched.result(11, "toolu_3", "In the tail reader.",
                                 toolUseResult={"agentId": "a5e1c0de", "status": "completed"}))
    return watched


@contextlib.asynccontextmanager
async def browser_page(tmp_path: Path, request):
    async with playwright_api.async_playwright() as pw:
        browser = await pw.chromium.launch(executable_path=str(CHROMIUM))
        page = await browser.new_page(viewport={"width": 1100, "height": 700})
        errors: list[str] = []
        page.on("pageerror", lambda e: errors.append(str(e)))
        page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
        try:
            yield page, errors
        except BaseException:
            shot = tmp_path / f"{request.node.name}-failure.png"
            with contextlib.suppress(Exception):
                await page.screenshot(path=str(shot), full_page=True)
                print(f"screenshot of the failing page: {shot}")
            raise
        finally:
            await browser.close()


async def keep(page, name: str) -> None:
    folder = os.environ.get("THREADLINE_WEB_SCREENSHOTS")
    if folder:
        await page.screenshot(path=str(Path(folder) / f"{name}.png"), full_page=True)


def test_the_page_lists_sessions_follows_a_conversation_and_charts_usage(tmp_path, request):
    root = tmp_path / "projects"
    watched = write_history(root)

    async def scenario():
        async with running_pipeline(tmp_path, [root]) as p, \
                browser_page(tmp_path, request) as (page, errors):
            base = f"http://127.0.0.1:{p.stream.ws_port}/"
            await page.goto(base)
            rows = page.locator("#sessions tbody tr[data-session]")
            await playwright_api.expect(rows).to_have_count(2, timeout=20_000)
            # Most recent first.
            await playwright_api.expect(rows.first).to_have_attribute(
                "data-session", "watched-session")
            await playwright_api.expect(page.locator("#connection")).to_have_text("live")
            await playwright_api.expect(rows.first.locator("td.models")).to_have_text(
                "claude-opus-4-7")
            await playwright_api.expect(rows.first.locator("td.cost")).to_have_text(
                re.compile(r"^\$\d+\.\d\d$"))
            await keep(page, "sessions")

            # A session that starts while the page is open joins the list at the top, and one
            # that grows moves up with its new count.
            fresh = Transcript(root / "-home-u-app" / "fresh.jsonl", "fresh-session",
                               "/home/u/app")
            fresh.write(fresh.prompt(20, "a new session"))
            await playwright_api.expect(rows).to_have_count(3, timeout=20_000)
            await playwright_api.expect(rows.first).to_have_attribute(
                "data-session", "fresh-session")
            older = Transcript(root / "-home-u-site" / "older.jsonl", "older-session",
                               "/home/u/site")
            older.count = 100  # new uuids after the ones written before
            older.write(older.prompt(30, "back to the stylesheet"))
            await playwright_api.expect(rows.first).to_have_attribute(
                "data-session", "older-session", timeout=20_000)
            await playwright_api.expect(rows.first.locator("td.messages")).to_have_text("17")

            await page.locator('#sessions tbody tr[data-session="watched-session"] a.title'
                               ).click()
            conversation = page.locator("#conversation")
            await playwright_api.expect(conversation).to_contain_text(
                "Why does the parser drop the last line?")
            # One line per tool call, with its outcome; the result opens below it.
            bash = conversation.locator("details.tool", has_text="uv run pytest")
            await playwright_api.expect(bash.locator(".outcome")).to_have_text("ok")
            await bash.locator("summary").click()
            await playwright_api.expect(bash.locator("pre.result")).to_have_text(
                "1 failed, 41 passed")
            # Markup from the transcript is text: nothing ran, no element was made.
            await playwright_api.expect(conversation).to_contain_text(XSS_PROMPT)
            await playwright_api.expect(conversation).to_contain_text("<b>Yes</b>")
            assert await conversation.locator("img, script, b").count() == 0
            assert await page.evaluate("window.__xss") is None
            # The subagent's messages are marked, and its call links to them.
            await playwright_api.expect(conversation.locator("article.subagent")).to_have_count(2)
            await playwright_api.expect(conversation.locator("article.subagent .badge").first
                                        ).to_have_text("subagent a5e1c0de")
            await page.evaluate("window.scrollTo(0, 0)")
            agent = conversation.locator("details.tool", has_text="find the tail handling")
            await agent.locator("button", has_text="subagent a5e1c0de").click()
            await playwright_api.expect(conversation.locator("article.subagent").first
                                        ).to_be_in_viewport()
            await page.evaluate("window.scrollTo(0, 0)")
            await keep(page, "conversation")

            # A line appended to the transcript appears without reloading.
            watched.write(watched.prompt(12, "appended while the page is open"))
            await playwright_api.expect(conversation.locator("article").last).to_contain_text(
                "appended while the page is open", timeout=15_000)
            # A line stored while the page is cut off arrives once it reconnects: it resumes
            # from the last sequence it had, so nothing is lost and nothing shown twice.
            head = p.stream.hub.head
            await p.stream.gateway.stop()
            await playwright_api.expect(page.locator("#connection")).to_have_text(
                "reconnecting…")
            watched.write(watched.prompt(13, "written while the page was away"))
            await eventually(lambda: p.stream.hub.head > head)
            assert await p.stream.gateway.start("127.0.0.1", p.stream.ws_port) \
                == p.stream.ws_port
            await playwright_api.expect(conversation.locator("article").last).to_contain_text(
                "written while the page was away", timeout=20_000)
            texts = await conversation.locator("article").all_inner_texts()
            assert sum("written while the page was away" in t for t in texts) == 1
            assert sum("appended while the page is open" in t for t in texts) == 1

            await page.locator("nav a[data-view=usage]").click()
            bars = page.locator("#usage-by-day rect")
            await playwright_api.expect(bars.first).to_be_visible(timeout=15_000)
            assert await bars.count() >= 4 * 5  # four kinds of tokens on each of five days
            await playwright_api.expect(page.locator("#usage-by-model")).to_contain_text(
                "claude-sonnet-4-5")
            tools = page.locator("#tools")
            await playwright_api.expect(tools).to_contain_text("Edit")
            await playwright_api.expect(tools.locator("tr", has_text="Edit")).to_contain_text(
                "25.0%")
            await keep(page, "usage")
            assert errors == []

    asyncio.run(scenario())


def test_search_shows_marked_snippets_and_opens_the_conversation_at_a_hit(tmp_path, request):
    root = tmp_path / "projects"
    write_history(root)

    async def scenario():
        async with running_pipeline(tmp_path, [root]) as p, \
                browser_page(tmp_path, request) as (page, errors):
            await page.goto(f"http://127.0.0.1:{p.stream.ws_port}/")
            await page.locator("nav a[data-view=search]").click()
            box = page.locator("#search-query")
            hits = page.locator("#hits li.hit")

            async def search(query: str, count: int) -> None:
                # The transcripts are still being read: the same query again asks again.
                async def found():
                    await box.fill(query)
                    await box.press("Enter")
                    with contextlib.suppress(AssertionError):
                        await playwright_api.expect(hits).to_have_count(count, timeout=1000)
                        return True
                await eventually(found, timeout=30)

            # Markup in a hit is text; the matched word is a <mark> the page made.
            await search("escaped", 1)
            xss = hits.first
            await playwright_api.expect(xss.locator("mark")).to_have_text("escaped")
            await playwright_api.expect(xss.locator(".snippet")).to_contain_text(
                "</script><img src=x")
            assert await page.locator("#hits").locator("img, script, b").count() == 0
            assert await page.evaluate("window.__xss") is None
            assert await page.evaluate("location.hash") == "#/search/escaped"

            # A hit in a tool's output opens the conversation at that call, its result shown.
            await search('"41 passed" tool:Bash', 1)
            hit = hits.first
            await playwright_api.expect(hit.locator("mark")).to_have_text("41 passed")
            await playwright_api.expect(hit).to_contain_text("tool result")
            await keep(page, "search")
            await hit.locator("a.open").click()
            target = page.locator("#conversation .target")
            await playwright_api.expect(target).to_have_count(1, timeout=15_000)
            await playwright_api.expect(target.locator("summary")).to_contain_text(
                "uv run pytest")
            await playwright_api.expect(target.locator("pre.result")).to_have_text(
                "1 failed, 41 passed")
            await playwright_api.expect(target).to_be_in_viewport()
            assert re.fullmatch(r"#/session/watched-session/\d+",
                                await page.evaluate("location.hash"))

            # A hit in a prompt marks that message; back returns to the hits.
            await page.go_back()
            await playwright_api.expect(box).to_have_value('"41 passed" tool:Bash')
            await search("handled in:prompt", 1)
            await hits.first.locator("a.open").click()
            await playwright_api.expect(page.locator("#conversation article.target")
                                        ).to_contain_text("Where is the last line handled?")
            # A query that cannot be understood says why, in place of the hits.
            await page.goto(f"http://127.0.0.1:{p.stream.ws_port}/#/search/%22unbalanced")
            await playwright_api.expect(page.locator("main p.error")).to_contain_text("quote")
            assert errors == []

    asyncio.run(scenario())


def test_when_every_read_needs_the_token_the_page_asks_for_it(tmp_path, request):
    root = tmp_path / "projects"
    write_history(root)

    async def scenario():
        async with running_pipeline(tmp_path, [root], require_token=True) as p, \
                browser_page(tmp_path, request) as (page, errors):
            port = p.stream.ws_port
            await page.goto(f"http://127.0.0.1:{port}/")
            form = page.locator("#token-form")
            await playwright_api.expect(form).to_be_visible()
            assert await page.locator("meta[name=threadline-token]").get_attribute(
                "content") == ""
            await page.locator("#token-input").fill("not-the-token")
            await form.locator("button").click()
            await playwright_api.expect(page.locator("#connection")).to_have_text(
                "token needed")
            await playwright_api.expect(form).to_be_visible()
            await page.locator("#token-input").fill(auth.for_client(p.settings).token)
            await form.locator("button").click()
            await playwright_api.expect(page.locator("#sessions tbody tr[data-session]")
                                        ).to_have_count(2, timeout=20_000)
            await playwright_api.expect(form).to_be_hidden()
            # The browser logs the refused handshake's close; nothing else went wrong.
            assert [e for e in errors if "1008" not in e] == []

    asyncio.run(scenario())
