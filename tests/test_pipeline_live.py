"""End to end: a line appended to a transcript reaches live clients through all four services."""

from __future__ import annotations

import asyncio
import uuid

import grpc
import orjson
import pytest
import websockets
from conftest import eventually, running_pipeline

from threadline.storage.readonly import open_readonly
from threadline.storage.stats import stats
from threadline.v1 import stream_pb2, stream_pb2_grpc


def user_line(uid: str, text: str = "hello", session: str = "s-live") -> bytes:
    return orjson.dumps({
        "parentUuid": None, "isSidechain": False, "type": "user", "sessionId": session,
        "cwd": "/home/u/app", "version": "2.1.39", "uuid": uid,
        "timestamp": "2026-11-01T10:00:00.000Z", "message": {"role": "user", "content": text},
    }) + b"\n"


async def next_frame_for(ws, uid: str, timeout: float = 10.0) -> dict:
    async def scan():
        while True:
            frame = orjson.loads(await ws.recv())
            if frame.get("message", {}).get("uuid") == uid:
                return frame
    return await asyncio.wait_for(scan(), timeout)


async def subscribed(ws, **fields) -> dict:
    await ws.send(orjson.dumps({"type": "subscribe", **fields}).decode())
    while True:
        frame = orjson.loads(await asyncio.wait_for(ws.recv(), 10))
        if frame["type"] == "subscribed":
            return frame


def test_appended_line_reaches_websocket_and_grpc_subscriber(tmp_path):
    root = tmp_path / "projects"
    transcript = root / "-home-u-app" / "s-live.jsonl"
    transcript.parent.mkdir(parents=True)
    first = str(uuid.uuid4())
    transcript.write_bytes(user_line(first, "already there"))

    async def scenario():
        async with running_pipeline(tmp_path, [root]) as p:
            async with websockets.connect(p.ws_url, additional_headers=p.ws_headers) as ws:
                ack = await subscribed(ws, since=0)
                assert (await next_frame_for(ws, first))["message"]["text"] == "already there"

                async with grpc.aio.insecure_channel(p.stream_addr) as channel:
                    stub = stream_pb2_grpc.StreamServiceStub(channel)
                    call = stub.Subscribe(stream_pb2.SubscribeRequest(
                        since_sequence=ack["head"]))
                    appended = str(uuid.uuid4())
                    with transcript.open("ab") as out:
                        out.write(user_line(appended, "appended live"))

                    frame = await next_frame_for(ws, appended)
                    assert frame["type"] == "message"
                    assert frame["session"] == "s-live"
                    assert frame["message"]["text"] == "appended live"
                    assert frame["sequence"] > ack["head"] or ack["head"] == 0

                    async def from_grpc():
                        async for change in call:
                            if change.message.uuid == appended:
                                return change
                    change = await asyncio.wait_for(from_grpc(), 10)
                    assert change.sequence == frame["sequence"]
                    call.cancel()

    asyncio.run(scenario())


def test_partial_line_waits_for_its_newline(tmp_path):
    root = tmp_path / "projects"
    transcript = root / "proj" / "s-live.jsonl"
    transcript.parent.mkdir(parents=True)
    transcript.touch()
    uid = str(uuid.uuid4())
    line = user_line(uid, "written in two parts")

    async def scenario():
        async with running_pipeline(tmp_path, [root]) as p:
            async with websockets.connect(p.ws_url, additional_headers=p.ws_headers) as ws:
                await subscribed(ws)
                with transcript.open("ab") as out:
                    out.write(line[:40])
                    out.flush()
                    # Give the watcher ample time to see the partial write: nothing may arrive.
                    with pytest.raises(TimeoutError):
                        await next_frame_for(ws, uid, timeout=0.6)
                    out.write(line[40:])
                frame = await next_frame_for(ws, uid)
                assert frame["message"]["text"] == "written in two parts"
                with pytest.raises(TimeoutError):
                    await next_frame_for(ws, uid, timeout=0.4)  # exactly once

    asyncio.run(scenario())


def test_client_resuming_from_a_sequence_gets_exactly_what_it_missed(tmp_path):
    root = tmp_path / "projects"
    transcript = root / "proj" / "s-live.jsonl"
    transcript.parent.mkdir(parents=True)
    transcript.touch()
    before = [str(uuid.uuid4()) for _ in range(3)]
    missed = [str(uuid.uuid4()) for _ in range(5)]

    async def scenario():
        async with running_pipeline(tmp_path, [root]) as p:
            async with websockets.connect(p.ws_url, additional_headers=p.ws_headers) as ws:
                await subscribed(ws)
                with transcript.open("ab") as out:
                    out.write(b"".join(user_line(u) for u in before))
                last = [await next_frame_for(ws, u) for u in before][-1]["sequence"]
            # Disconnected: these are written while nobody listens.
            with transcript.open("ab") as out:
                out.write(b"".join(user_line(u) for u in missed))

            async def stored():

                with open_readonly(p.settings.db).connect() as conn:
                    return stats(conn)["messages"] >= len(before) + len(missed)
            await eventually(stored)

            async with websockets.connect(p.ws_url, additional_headers=p.ws_headers) as ws:
                await subscribed(ws, since=last)
                received, others = [], set()
                while True:  # until the replay has been quiet for a while: nothing twice
                    try:
                        frame = orjson.loads(await asyncio.wait_for(
                            ws.recv(), 10 if len(received) < len(missed) else 0.6))
                    except TimeoutError:
                        break
                    if frame["type"] == "message":
                        received.append(frame["message"]["uuid"])
                    else:
                        others.add(frame["type"])
                assert received == missed
                # Interleaved with them: the analysis of the session they belong to.
                assert others <= {"thread_updated", "analysis_updated"}

    asyncio.run(scenario())


def test_a_link_out_of_the_root_is_streamed_as_a_problem_and_never_read(tmp_path):
    root = tmp_path / "projects"
    project = root / "-home-u-app"
    project.mkdir(parents=True)
    outside = tmp_path / "outside"
    outside.mkdir()
    secret = b"-----BEGIN OPENSSH PRIVATE KEY----- fake-9c1d"
    (outside / "id_key").write_bytes(secret + b"\n")
    transcript = project / "s-live.jsonl"
    transcript.write_bytes(b"")

    async def scenario():
        async with running_pipeline(tmp_path, [root]) as p:
            async with websockets.connect(p.ws_url, additional_headers=p.ws_headers) as ws:
                await subscribed(ws)
                (project / "leak.jsonl").symlink_to("../../outside/id_key")
                after = str(uuid.uuid4())
                frames = []

                async def until_problem_and_next_line():
                    wrote = False
                    while True:
                        raw = await ws.recv()
                        frames.append(raw)
                        frame = orjson.loads(raw)
                        if frame["type"] == "parse_error" and not wrote:
                            with transcript.open("ab") as out:
                                out.write(user_line(after))
                            wrote = True
                        if frame.get("message", {}).get("uuid") == after:
                            return

                await asyncio.wait_for(until_problem_and_next_line(), 15)
                problems = [orjson.loads(f)["error"] for f in frames
                            if orjson.loads(f)["type"] == "parse_error"]
                assert [(e["path"], e["reason"], e["excerpt"]) for e in problems] == [
                    (str(project / "leak.jsonl"), "symlink_outside_root", "")]
                assert not any(secret[:20] in (f if isinstance(f, bytes) else f.encode())
                               for f in frames)

    asyncio.run(scenario())
