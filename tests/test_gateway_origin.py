"""Who may open the WebSocket gateway: browsers only from allowed origins, other clients only
with the installation's token; and wss when the gateway has a certificate.

A real gateway on port 0 and real WebSocket clients; the store behind it is not needed for a
handshake, so the replay it would call is a stand-in that is never reached.
"""

from __future__ import annotations

import asyncio
import contextlib
import ssl

import orjson
import pytest
from tls_support import self_signed
from websockets.asyncio.client import connect
from websockets.exceptions import InvalidStatus

from services.stream.gateway import Gateway
from services.stream.hub import Hub
from threadline.auth import RefusedToStart, Security

TOKEN = "gateway-test-token"
BEARER = {"Authorization": f"Bearer {TOKEN}"}


async def _no_replay(since, filter_):  # pragma: no cover - never reached by a handshake
    raise AssertionError("no replay in these tests")
    yield


@contextlib.asynccontextmanager
async def running_gateway(security: Security | None = None, origins: tuple[str, ...] = ()):
    gateway = Gateway(Hub(100), _no_replay, 100,
                      security=security or Security(token=TOKEN), origins=origins)
    port = await gateway.start("127.0.0.1", 0)
    try:
        yield port
    finally:
        await gateway.stop()


async def subscribed(ws) -> dict:
    await ws.send(orjson.dumps({"type": "subscribe", "id": 1}).decode())
    reply = orjson.loads(await asyncio.wait_for(ws.recv(), 5))
    assert reply["type"] == "subscribed", reply
    return reply


async def refused_status(url: str, **kwargs) -> int:
    with pytest.raises(InvalidStatus) as refused:
        async with connect(url, **kwargs):
            pass
    return refused.value.response.status_code


@pytest.mark.parametrize("origin", ["https://evil.example", "null", "http://127.0.0.1:1"])
def test_a_page_from_another_origin_is_refused_with_403(origin):
    async def main():
        async with running_gateway() as port:
            url = f"ws://127.0.0.1:{port}/ws"
            assert await refused_status(url, origin=origin) == 403
            # The token does not make a foreign page acceptable either.
            assert await refused_status(url, origin=origin, additional_headers=BEARER) == 403

    asyncio.run(main())


def test_the_gateways_own_origin_is_accepted_without_a_token():
    async def main():
        async with running_gateway() as port:
            for host in ("127.0.0.1", "localhost"):
                async with connect(f"ws://127.0.0.1:{port}/ws",
                                   origin=f"http://{host}:{port}") as ws:
                    await subscribed(ws)

    asyncio.run(main())


def test_a_configured_origin_list_replaces_the_default():
    async def main():
        async with running_gateway(origins=("https://dash.example",)) as port:
            url = f"ws://127.0.0.1:{port}/ws"
            async with connect(url, origin="https://dash.example") as ws:
                await subscribed(ws)
            assert await refused_status(url, origin=f"http://127.0.0.1:{port}") == 403

    asyncio.run(main())


def test_a_client_without_origin_needs_the_token():
    async def main():
        async with running_gateway() as port:
            url = f"ws://127.0.0.1:{port}/ws"
            assert await refused_status(url) == 401
            assert await refused_status(
                url, additional_headers={"Authorization": "Bearer wrong"}) == 401
            assert await refused_status(url, additional_headers={"Authorization": TOKEN}) == 401
            async with connect(url, additional_headers=BEARER) as ws:
                await subscribed(ws)
            # The scheme is case-insensitive (RFC 9110).
            async with connect(url, additional_headers={"Authorization": f"bearer {TOKEN}"}):
                pass

    asyncio.run(main())


def test_without_a_known_token_only_allowed_origins_get_in():
    async def main():
        async with running_gateway(Security()) as port:
            url = f"ws://127.0.0.1:{port}/ws"
            assert await refused_status(url, additional_headers={"Authorization": "Bearer "}) \
                == 401
            async with connect(url, origin=f"http://127.0.0.1:{port}") as ws:
                await subscribed(ws)

    asyncio.run(main())


def test_the_gateway_serves_wss_with_the_certificate(tmp_path):
    cert, key = self_signed(tmp_path)
    security = Security(token=TOKEN, tls_cert=cert, tls_key=key)

    async def main():
        async with running_gateway(security) as port:
            async with connect(f"wss://127.0.0.1:{port}/ws", additional_headers=BEARER,
                               ssl=security.client_ssl_context()) as ws:
                await subscribed(ws)
            async with connect(f"wss://127.0.0.1:{port}/ws", origin=f"https://localhost:{port}",
                               ssl=security.client_ssl_context()) as ws:
                await subscribed(ws)
            # A client that does not trust the certificate cannot connect.
            with pytest.raises(ssl.SSLCertVerificationError):
                async with connect(f"wss://127.0.0.1:{port}/ws", additional_headers=BEARER,
                                   ssl=ssl.create_default_context()):
                    pass

    asyncio.run(main())


def test_the_gateway_refuses_to_listen_beyond_loopback_without_tls():
    async def main():
        gateway = Gateway(Hub(100), _no_replay, 100, security=Security(token=TOKEN))
        with pytest.raises(RefusedToStart, match="without TLS"):
            await gateway.start("0.0.0.0", 0)
        await gateway.stop()

    asyncio.run(main())
