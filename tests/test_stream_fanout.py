"""The gateway with many clients: a client watching one session is never made to wait for the
clients watching everything (real stream service, real WebSocket clients and sockets)."""

from __future__ import annotations

import asyncio
import socket

import orjson
import pytest
from test_stream_service import connect, recv, running_stack, subscribe, ws_url
from websockets.exceptions import ConnectionClosed

from services.stream.events import Event
from services.stream.gateway import SLOW_CONSUMER_CLOSE_CODE
from threadline.v1 import common_pb2

WATCHERS = 20


def change(sequence: int, session: str, text: str = "hello") -> Event:
    return Event(common_pb2.Change(
        sequence=sequence, project_key="p", session_id=session,
        kind=common_pb2.CHANGE_KIND_MESSAGE,
        message=common_pb2.Message(uuid=f"u{sequence}", session_id=session, text=text)))


async def connect_unread(running):
    """A client with a tiny receive buffer that will not read once subscribed."""
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sock.connect(("127.0.0.1", running.ws_port))
    sock.setblocking(False)
    return await connect(ws_url(running), sock=sock, max_queue=1, max_size=2**21)


def test_a_session_client_is_served_before_the_backlog_of_clients_watching_everything():
    async def main():
        async with running_stack() as (_store, running, _):
            watchers = [await connect(ws_url(running)) for _ in range(WATCHERS)]
            for ws in watchers:
                await subscribe(ws)
            async with connect(ws_url(running)) as mine:
                await subscribe(mine, session="mine")
                # One upstream batch: 100 changes for everyone, then one for "mine".
                hub = running.hub
                start = hub.head
                for n in range(1, 101):
                    hub.publish(start + n, "p", "busy", change(start + n, "busy"))
                hub.publish(start + 101, "p", "mine", change(start + 101, "mine"))
                frame = await recv(mine)
                assert (frame["session"], frame["sequence"]) == ("mine", start + 101)
                # It did not wait for the others' frames to be written: they each got a turn
                # of at most BURST frames before it, and most of theirs are still queued.
                behind = [c.queued for c in running.gateway.connections if c.queued]
                assert len(behind) == WATCHERS
                assert all(queued > 101 // 2 for queued in behind), behind
                # And the watchers still get every change, in order.
                for ws in watchers:
                    got = [(await recv(ws))["sequence"] for _ in range(101)]
                    assert got == list(range(start + 1, start + 102))
            for ws in watchers:
                await ws.close()

    asyncio.run(main())


def test_a_session_client_gets_its_changes_while_clients_that_never_read_are_dropped():
    async def main():
        async with running_stack(queue=8) as (store, running, _):
            stalled = [await connect_unread(running) for _ in range(WATCHERS)]
            for ws in stalled:
                await subscribe(ws)
            async with connect(ws_url(running)) as mine:
                await subscribe(mine, session="mine")
                big = "x" * 200_000
                expected = []
                while running.gateway.slow_disconnects < WATCHERS:
                    assert len(store.changes) < 2000, "the stalled clients were never dropped"
                    store.append(session="busy", text=big)
                    if len(store.changes) % 3 == 0:
                        expected.append(store.append(session="mine", text="mine").sequence)
                        assert (await recv(mine))["sequence"] == expected[-1]
                    await asyncio.sleep(0)
                assert expected
                # Still subscribed and served after they are gone.
                later = store.append(session="mine", text="after").sequence
                assert (await recv(mine))["sequence"] == later
                await mine.send(orjson.dumps({"type": "ping"}).decode())
                assert (await recv(mine))["type"] == "pong"
            for ws in stalled:
                with pytest.raises(ConnectionClosed) as closed:
                    while True:
                        await recv(ws)
                assert closed.value.rcvd.code == SLOW_CONSUMER_CLOSE_CODE

    asyncio.run(main())
