"""The page the gateway serves, and who gets the token in it: a real gateway on port 0, plain
HTTP requests with the Host header a browser (or a DNS-rebinding page) would send, and real
WebSocket clients for the "auth" frame.
"""

from __future__ import annotations

import asyncio
import contextlib
import http.client
import re
from pathlib import Path

import orjson
import pytest
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed

from services.stream import webpage
from services.stream.gateway import Gateway
from services.stream.hub import Hub
from threadline.auth import Security

TOKEN = "page-test-token"


async def _no_replay(since, filter_):  # pragma: no cover - nothing here replays
    raise AssertionError("no replay in these tests")
    yield


@contextlib.asynccontextmanager
async def running_gateway(security: Security | None = None, origins: tuple[str, ...] = (),
                          host: str = "127.0.0.1"):
    gateway = Gateway(Hub(100), _no_replay, 100, security=security or Security(token=TOKEN),
                      origins=origins)
    port = await gateway.start(host, 0)
    try:
        yield port
    finally:
        await gateway.stop()


def _get(port: int, path: str, host: str) -> tuple[int, dict[str, str], str]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
    try:
        conn.request("GET", path, headers={"Host": host})
        response = conn.getresponse()
        return response.status, dict(response.getheaders()), response.read().decode()
    finally:
        conn.close()


async def get(port: int, path: str = "/", host: str | None = None):
    return await asyncio.to_thread(_get, port, path,
                                   f"127.0.0.1:{port}" if host is None else host)


def page_token(body: str) -> str:
    found = re.search(r'<meta name="threadline-token" content="([^"]*)">', body)
    assert found, body
    return found.group(1)


def test_the_page_is_served_with_the_token_to_the_gateways_own_host_names():
    async def main():
        async with running_gateway() as port:
            for host in (f"127.0.0.1:{port}", f"localhost:{port}", f"LOCALHOST:{port}"):
                status, headers, body = await get(port, "/", host)
                assert status == 200
                assert page_token(body) == TOKEN
                assert headers["Content-Type"] == "text/html; charset=utf-8"
                assert headers["Cache-Control"] == "no-store"
                assert headers["X-Content-Type-Options"] == "nosniff"
                csp = headers["Content-Security-Policy"]
                assert "default-src 'none'" in csp and "script-src 'self'" in csp
                assert "unsafe-inline" not in csp

    asyncio.run(main())


@pytest.mark.parametrize("host", ["evil.example:{port}", "127.0.0.1:1", "evil.example", "",
                                  "127.0.0.1:{port}.evil.example"])
def test_a_foreign_host_header_gets_no_token(host):
    async def main():
        async with running_gateway() as port:
            status, headers, body = await get(port, "/", host.format(port=port))
            assert status == 421
            assert TOKEN not in body
            assert headers["Cache-Control"] == "no-store"

    asyncio.run(main())


def test_two_host_headers_get_no_token():
    async def main():
        async with running_gateway() as port:
            reader, writer = await asyncio.open_connection("127.0.0.1", port)
            writer.write(f"GET / HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n"
                         "Host: evil.example\r\n\r\n".encode())
            await writer.drain()
            answer = await asyncio.wait_for(reader.read(), 5)
            writer.close()
            await writer.wait_closed()
            assert answer.startswith(b"HTTP/1.1 421 ")
            assert TOKEN.encode() not in answer

    asyncio.run(main())


def test_a_configured_origins_host_gets_the_token():
    async def main():
        async with running_gateway(origins=("https://dash.example",
                                            "http://box.lan:9000")) as port:
            for host in ("dash.example", "box.lan:9000"):
                status, _, body = await get(port, "/", host)
                assert status == 200 and page_token(body) == TOKEN
            assert (await get(port, "/", "other.example"))[0] == 421

    asyncio.run(main())


def test_a_token_with_markup_characters_stays_an_attribute_value():
    token = 'a"><script>alert(1)</script>'

    async def main():
        async with running_gateway(Security(token=token)) as port:
            _, _, body = await get(port)
            assert "<script>alert" not in body
            assert page_token(body) == "a&quot;&gt;&lt;script&gt;alert(1)&lt;/script&gt;"

    asyncio.run(main())


@pytest.mark.parametrize(("path", "content_type"), [
    ("/app.js", "text/javascript; charset=utf-8"),
    ("/conversation.js", "text/javascript; charset=utf-8"),
    ("/style.css", "text/css; charset=utf-8"),
    ("/favicon.svg", "image/svg+xml"),
])
def test_the_pages_files_are_served_with_their_types(path, content_type):
    async def main():
        async with running_gateway() as port:
            status, headers, body = await get(port, path)
            assert status == 200 and body
            assert headers["Content-Type"] == content_type
            assert headers["X-Content-Type-Options"] == "nosniff"
            assert TOKEN not in body
            # Anything else is still not found.
            assert (await get(port, "/etc/passwd"))[0] == 404

    asyncio.run(main())


async def ask(ws, frame: dict) -> dict:
    await ws.send(orjson.dumps(frame).decode())
    return orjson.loads(await asyncio.wait_for(ws.recv(), 5))


def test_when_every_read_needs_the_token_the_page_must_be_given_it_and_present_it():
    async def main():
        async with running_gateway(Security(token=TOKEN, require_token=True)) as port:
            # Any local user could fetch the page: it carries no token then.
            status, _, body = await get(port)
            assert status == 200 and page_token(body) == ""
            url, origin = f"ws://127.0.0.1:{port}/ws", f"http://127.0.0.1:{port}"
            async with connect(url, origin=origin) as ws:
                # An allowed Origin alone is not enough: a local program can forge it.
                refused = await ask(ws, {"type": "status", "id": 1})
                assert (refused["error"], refused["id"]) == ("unauthenticated", 1)
                assert (await ask(ws, {"type": "subscribe"}))["error"] == "unauthenticated"
                assert (await ask(ws, {"type": "sessions"}))["error"] == "unauthenticated"
                assert (await ask(ws, {"type": "ping"}))["type"] == "pong"
                assert (await ask(ws, {"type": "auth", "token": TOKEN, "id": 2})) == {
                    "type": "authenticated", "id": 2}
                status = await ask(ws, {"type": "status"})
                assert status["authenticated"] is True
                assert "sessions" not in status["capabilities"]  # this gateway has no store
                assert (await ask(ws, {"type": "subscribe"}))["type"] == "subscribed"
            async with connect(url, origin=origin) as ws:
                wrong = await ask(ws, {"type": "auth", "token": "guess"})
                assert wrong["error"] == "invalid_token"
                with pytest.raises(ConnectionClosed) as closed:
                    await asyncio.wait_for(ws.recv(), 5)
                assert closed.value.rcvd.code == 1008
            # A client that sent the token in the handshake needs no auth frame.
            async with connect(url, additional_headers={"Authorization": f"Bearer {TOKEN}"}
                               ) as ws:
                assert (await ask(ws, {"type": "status"}))["authenticated"] is True

    asyncio.run(main())


def test_by_default_the_page_works_without_an_auth_frame_and_may_send_one():
    async def main():
        async with running_gateway() as port:
            url, origin = f"ws://127.0.0.1:{port}/ws", f"http://127.0.0.1:{port}"
            async with connect(url, origin=origin) as ws:
                assert (await ask(ws, {"type": "status"}))["authenticated"] is False
                assert (await ask(ws, {"type": "auth", "token": TOKEN}))["type"] == \
                    "authenticated"
                assert (await ask(ws, {"type": "status"}))["authenticated"] is True

    asyncio.run(main())


def test_a_gateway_beyond_loopback_never_puts_the_token_in_the_page():
    security = Security(token=TOKEN, allow_insecure_network=True)

    async def main():
        async with running_gateway(security, host="0.0.0.0") as port:
            status, _, body = await get(port)
            assert status == 200 and page_token(body) == ""

    asyncio.run(main())


def test_every_file_of_the_page_is_served_and_every_import_resolves():
    folder = Path(webpage.__file__).parent / "web"
    served = {name for name, _ in webpage.FILES.values()}
    assert served == {p.name for p in folder.iterdir()}
    for script in folder.glob("*.js"):
        for imported in re.findall(r'from "\./([^"]+)"', script.read_text()):
            assert f"/{imported}" in webpage.FILES, (script.name, imported)
    for reference in re.findall(r'(?:src|href)="(/[^"]*)"', (folder / "index.html").read_text()):
        assert reference in webpage.FILES
