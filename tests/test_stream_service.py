"""The stream service end to end: a real gRPC store stand-in, real WebSocket and gRPC clients.

The store is being written separately; `StandInStore` is a minimal real gRPC StoreService
(Changes and GetStats from an in-memory list) at that true boundary.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import time

import grpc
import orjson
import pytest
from websockets.asyncio.client import connect as ws_connect
from websockets.exceptions import ConnectionClosed, InvalidStatus

from services.stream import server as stream_server
from services.stream import upstream
from services.stream.gateway import SLOW_CONSUMER_CLOSE_CODE
from threadline import config
from threadline.v1 import common_pb2, store_pb2, store_pb2_grpc, stream_pb2, stream_pb2_grpc

DEADLINE = 5.0
# These clients send no Origin (they are no browser page), so they present the token.
TOKEN = "stream-test-token"


def connect(url: str, **kwargs):
    return ws_connect(url, additional_headers={"Authorization": f"Bearer {TOKEN}"}, **kwargs)


class StandInStore(store_pb2_grpc.StoreServiceServicer):
    """Changes and GetStats over an in-memory list; sequence n is changes[n - 1]."""

    def __init__(self) -> None:
        self.changes: list[common_pb2.Change] = []
        self._appended = asyncio.Event()
        self.replay_started = asyncio.Event()
        # When set, a replay (follow=false) waits on these: before taking its snapshot, and
        # after sending its first change.
        self.hold_before_snapshot: asyncio.Event | None = None
        self.hold_after_first: asyncio.Event | None = None
        self._kick = asyncio.Event()
        # Every live (follow=true) Changes request, in order.
        self.follows: list[store_pb2.ChangesRequest] = []

    def append(self, project="p1", session="s1", text="hello", parse_error=False,
               trace_context=None) -> common_pb2.Change:
        seq = len(self.changes) + 1
        change = common_pb2.Change(sequence=seq, project_key=project, session_id=session,
                                   trace_context=trace_context or {})
        if parse_error:
            change.kind = common_pb2.CHANGE_KIND_PARSE_ERROR
            change.parse_error.CopyFrom(common_pb2.ParseError(
                source=common_pb2.SourcePosition(path="/t.jsonl", byte_offset=10, line_number=2),
                reason="invalid_json", detail="unexpected end", excerpt=b"{oops",
                project_key=project))
        else:
            change.kind = common_pb2.CHANGE_KIND_MESSAGE
            change.message.CopyFrom(common_pb2.Message(
                uuid=f"u{seq}", session_id=session, project_key=project, type="assistant",
                role=common_pb2.ROLE_ASSISTANT, text=text, key=f"u{seq}", model="m",
                content=[common_pb2.ContentBlock(kind=common_pb2.BLOCK_KIND_TOOL_USE,
                                                 tool_name="Bash", tool_use_id="t1",
                                                 tool_input_json=b'{"command":"ls"}')],
                usage=common_pb2.TokenUsage(input_tokens=3, output_tokens=5),
                source=common_pb2.SourcePosition(path="/t.jsonl", byte_offset=0,
                                                 line_number=seq)))
        self.changes.append(change)
        appended, self._appended = self._appended, asyncio.Event()
        appended.set()
        return change

    def kick_followers(self) -> None:
        """End every following Changes stream as a store does with a too-slow subscriber."""
        kick, self._kick = self._kick, asyncio.Event()
        kick.set()

    async def GetStats(self, request, context):
        return store_pb2.StoreStats(last_sequence=len(self.changes))

    async def Changes(self, request, context):
        def wanted(c):
            return ((not request.project_key or c.project_key == request.project_key)
                    and (not request.session_id or c.session_id == request.session_id))

        position = request.since_sequence
        if not request.follow:
            self.replay_started.set()
            if self.hold_before_snapshot is not None:
                await self.hold_before_snapshot.wait()
            sent = 0
            for change in list(self.changes[position:]):
                if wanted(change):
                    yield common_pb2.ChangeBatch(changes=[change])
                    sent += 1
                    if sent == 1 and self.hold_after_first is not None:
                        await self.hold_after_first.wait()
            return
        kick = self._kick
        self.follows.append(request)
        while True:
            appended = self._appended
            while position < len(self.changes):
                change = self.changes[position]
                position += 1
                if request.heads_only:
                    yield common_pb2.ChangeBatch(changes=[common_pb2.Change(
                        sequence=change.sequence, kind=change.kind,
                        project_key=change.project_key, session_id=change.session_id)])
                elif wanted(change):
                    yield common_pb2.ChangeBatch(changes=[change])
            waiter = asyncio.ensure_future(appended.wait())
            kicked = asyncio.ensure_future(kick.wait())
            await asyncio.wait([waiter, kicked], return_when=asyncio.FIRST_COMPLETED)
            waiter.cancel()
            kicked.cancel()
            if kick.is_set():
                await context.abort(grpc.StatusCode.RESOURCE_EXHAUSTED, "too slow")


async def start_store(store: StandInStore, port: int = 0) -> tuple[grpc.aio.Server, int]:
    srv = grpc.aio.server()
    store_pb2_grpc.add_StoreServiceServicer_to_server(store, srv)
    bound = srv.add_insecure_port(f"127.0.0.1:{port}")
    await srv.start()
    return srv, bound


async def wait_for(condition, what: str, deadline: float = DEADLINE) -> None:
    end = time.monotonic() + deadline
    while not condition():
        if time.monotonic() > end:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.002)


@contextlib.asynccontextmanager
async def running_stack(queue: int = 1000):
    """A stand-in store and a stream service connected to it."""
    store = StandInStore()
    store_srv, store_port = await start_store(store)
    settings = config.resolve({"host": "127.0.0.1", "port": 0, "ws_host": "127.0.0.1",
                               "ws_port": 0, "store_addr": f"127.0.0.1:{store_port}",
                               "subscriber_queue": queue, "token": TOKEN}, environ={})
    running = await stream_server.start(settings)
    holder = {"store_srv": store_srv, "store_port": store_port}
    try:
        await wait_for(lambda: running.feed.connected, "the upstream to connect")
        yield store, running, holder
    finally:
        await running.stop()
        await holder["store_srv"].stop(0)


async def recv(ws, deadline: float = DEADLINE) -> dict:
    return orjson.loads(await asyncio.wait_for(ws.recv(), deadline))


async def recv_changes(ws, count: int) -> list[dict]:
    frames = []
    while len(frames) < count:
        frame = await recv(ws)
        assert frame["type"] in ("message", "parse_error"), frame
        frames.append(frame)
    return frames


async def subscribe(ws, **fields) -> dict:
    await ws.send(orjson.dumps({"type": "subscribe", **fields}).decode())
    reply = await recv(ws)
    assert reply["type"] == "subscribed", reply
    return reply


def ws_url(running, path: str = "/ws") -> str:
    return f"ws://127.0.0.1:{running.ws_port}{path}"


def stream_stub(running) -> tuple[grpc.aio.Channel, stream_pb2_grpc.StreamServiceStub]:
    channel = grpc.aio.insecure_channel(f"127.0.0.1:{running.port}")
    return channel, stream_pb2_grpc.StreamServiceStub(channel)


def test_a_change_reaches_a_websocket_client_and_a_grpc_subscriber():
    async def main():
        async with running_stack() as (store, running, _):
            channel, stub = stream_stub(running)
            call = stub.Subscribe(stream_pb2.SubscribeRequest())
            await wait_for(lambda: len(running.hub) == 1, "gRPC subscriber")
            async with connect(ws_url(running)) as ws:
                reply = await subscribe(ws, id="a1")
                assert reply["id"] == "a1" and reply["head"] == 0 and reply["project"] is None
                store.append(text="first", trace_context={
                    "traceparent": "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"})
                store.append(parse_error=True)
                message, error = await recv_changes(ws, 2)
                assert message["type"] == "message" and message["sequence"] == 1
                assert message["subscription"] == reply["subscription"]
                assert (message["project"], message["session"]) == ("p1", "s1")
                body = message["message"]
                assert body["text"] == "first" and body["role"] == "assistant"
                assert body["uuid"] == "u1" and body["source"]["line_number"] == 1
                assert body["content"][0]["input"] == {"command": "ls"}
                assert body["usage"]["output_tokens"] == 5
                assert error["type"] == "parse_error" and error["sequence"] == 2
                assert error["error"]["reason"] == "invalid_json"
                assert error["error"]["line_number"] == 2
            got = [await asyncio.wait_for(call.read(), DEADLINE) for _ in range(2)]
            assert [c.sequence for c in got] == [1, 2]
            assert got[0].message.text == "first"
            status = await stub.GetStatus(stream_pb2.GetStreamStatusRequest())
            assert status.head_sequence == 2 and status.grpc_subscribers == 1
            call.cancel()
            await wait_for(lambda: len(running.hub) == 0, "the gRPC subscriber to leave")
            await channel.close()

    asyncio.run(main())


def test_filters_by_project_and_session():
    async def main():
        async with running_stack() as (store, running, _):
            channel, stub = stream_stub(running)
            call = stub.Subscribe(stream_pb2.SubscribeRequest(project_key="p2"))
            await wait_for(lambda: len(running.hub) == 1, "gRPC subscriber")
            async with connect(ws_url(running)) as ws:
                by_project = (await subscribe(ws, project="p1"))["subscription"]
                by_session = (await subscribe(ws, session="s2"))["subscription"]
                both = (await subscribe(ws, project="p1", session="s1"))["subscription"]
                store.append("p1", "s1")  # 1
                store.append("p2", "s2")  # 2
                store.append("p1", "s2")  # 3
                store.append("p3", "s3")  # 4
                store.append("p2", "s9")  # 5
                expected = {(by_project, 1), (both, 1), (by_session, 2), (by_project, 3),
                            (by_session, 3)}
                frames = await recv_changes(ws, len(expected))
                assert {(f["subscription"], f["sequence"]) for f in frames} == expected
                # Nothing else is pending: the next frame answers a ping.
                await ws.send('{"type":"ping"}')
                assert (await recv(ws))["type"] == "pong"
            got = [await asyncio.wait_for(call.read(), DEADLINE) for _ in range(2)]
            assert [c.sequence for c in got] == [2, 5]
            call.cancel()
            await channel.close()

    asyncio.run(main())


def test_resume_with_since_gets_exactly_what_was_missed():
    async def main():
        async with running_stack() as (store, running, _):
            for _ in range(5):
                store.append()
            await wait_for(lambda: running.hub.head == 5, "head 5")
            store.hold_before_snapshot = asyncio.Event()
            store.hold_after_first = asyncio.Event()
            async with connect(ws_url(running)) as ws:
                reply = await subscribe(ws, since=2)
                assert reply["since"] == 2
                await asyncio.wait_for(store.replay_started.wait(), DEADLINE)
                # Published live while the replay has not taken its snapshot: in both.
                store.append()
                store.append()
                await wait_for(lambda: running.hub.head == 7, "head 7")
                store.hold_before_snapshot.set()
                first = await recv(ws)
                assert first["sequence"] == 3
                # Published while the replay is under way, after its snapshot: live only.
                store.append()
                store.append()
                await wait_for(lambda: running.hub.head == 9, "head 9")
                store.hold_after_first.set()
                rest = await recv_changes(ws, 6)
                assert [f["sequence"] for f in rest] == [4, 5, 6, 7, 8, 9]
                store.append()
                assert (await recv(ws))["sequence"] == 10
                await ws.send('{"type":"ping"}')
                assert (await recv(ws))["type"] == "pong"  # no duplicate was pending
            # The gRPC door resumes the same way.
            store.hold_before_snapshot = store.hold_after_first = None
            channel, stub = stream_stub(running)
            call = stub.Subscribe(stream_pb2.SubscribeRequest(since_sequence=7))
            got = [await asyncio.wait_for(call.read(), DEADLINE) for _ in range(3)]
            assert [c.sequence for c in got] == [8, 9, 10]
            store.append()
            assert (await asyncio.wait_for(call.read(), DEADLINE)).sequence == 11
            call.cancel()
            await channel.close()

    asyncio.run(main())


def test_slow_websocket_client_is_closed_while_a_fast_one_keeps_up():
    async def main():
        async with running_stack(queue=4) as (store, running, _):
            # The slow client has a tiny socket buffer and stops reading after subscribing.
            sock = socket.socket()
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
            sock.connect(("127.0.0.1", running.ws_port))
            sock.setblocking(False)
            async with connect(ws_url(running), sock=sock, max_queue=1,
                               max_size=2**21) as slow, \
                    connect(ws_url(running), max_size=2**21) as fast:
                await subscribe(slow)
                await subscribe(fast)
                big = "x" * 200_000
                sequence = 0
                while running.gateway.slow_disconnects == 0:
                    assert sequence < 2000, "the slow client was never disconnected"
                    sequence = store.append(text=big).sequence
                    assert (await recv(fast))["sequence"] == sequence
                for _ in range(3):
                    sequence = store.append(text="after").sequence
                    assert (await recv(fast))["sequence"] == sequence
                # The slow client reads what was sent, then the close frame.
                received = []
                with pytest.raises(ConnectionClosed) as closed:
                    while True:
                        received.append((await recv(slow))["sequence"])
                frame = closed.value.rcvd
                assert frame is not None and frame.code == SLOW_CONSUMER_CLOSE_CODE
                assert "slow consumer" in frame.reason
                resume_from = int(frame.reason.rsplit("since=", 1)[1])
                assert received and resume_from == received[-1]
                assert received == list(range(1, resume_from + 1))
            channel, stub = stream_stub(running)
            status = await stub.GetStatus(stream_pb2.GetStreamStatusRequest())
            assert status.slow_disconnects == 1
            await channel.close()

    asyncio.run(main())


def test_slow_grpc_subscriber_is_ended_with_resource_exhausted():
    async def main():
        async with running_stack(queue=4) as (store, running, _):
            channel, stub = stream_stub(running)
            call = stub.Subscribe(stream_pb2.SubscribeRequest())
            await wait_for(lambda: len(running.hub) == 1, "gRPC subscriber")
            big = "x" * 200_000
            for _ in range(2000):
                store.append(text=big)
                await asyncio.sleep(0)
                if running.hub.drops:
                    break
            # The feed is read by a thread of its own: it may still be publishing.
            await wait_for(lambda: running.hub.drops, "the slow subscriber to be dropped")
            assert running.hub.drops == 1
            received = []
            with pytest.raises(grpc.aio.AioRpcError) as failed:
                while True:
                    change = await asyncio.wait_for(call.read(), DEADLINE)
                    assert change is not grpc.aio.EOF
                    received.append(change.sequence)
            assert failed.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
            details = failed.value.details()
            assert "slow consumer" in details
            # The feed publishes in bursts: the drop may come before the first delivery.
            resume_from = int(details.rsplit("since=", 1)[1])
            assert resume_from == (received[-1] if received else 0)
            assert received == list(range(1, resume_from + 1))
            await channel.close()

    asyncio.run(main())


def test_garbage_gets_error_frames_and_the_connection_keeps_working():
    async def main():
        async with running_stack() as (store, running, _):
            async with connect(ws_url(running)) as ws:
                cases = [
                    ("not json", "invalid_json"),
                    (b"\x00\x01binary", "binary_frame"),
                    ("[1, 2]", "not_an_object"),
                    ('"text"', "not_an_object"),
                    ("{}", "missing_type"),
                    ('{"type": "nope", "id": 4}', "unknown_type"),
                    ('{"type": "subscribe", "since": -1}', "invalid_since"),
                    ('{"type": "subscribe", "since": "3"}', "invalid_field"),
                    ('{"type": "subscribe", "since": true}', "invalid_field"),
                    ('{"type": "subscribe", "project": 5}', "invalid_field"),
                    ('{"type": "unsubscribe", "subscription": "x"}', "invalid_field"),
                    ('{"type": "unsubscribe", "subscription": 99}', "unknown_subscription"),
                    ('{"type": "ping", "id": {"a": 1}}', "invalid_field"),
                ]
                for frame, code in cases:
                    await ws.send(frame)
                    reply = await recv(ws)
                    assert reply["type"] == "error" and reply["error"] == code, (frame, reply)
                    assert reply["message"]
                await ws.send('{"type": "nope", "id": 4}')
                assert (await recv(ws))["id"] == 4
                await subscribe(ws)
                store.append()
                assert (await recv(ws))["sequence"] == 1

    asyncio.run(main())


def test_ping_status_and_unsubscribe():
    async def main():
        async with running_stack() as (store, running, _):
            async with connect(ws_url(running)) as ws, connect(ws_url(running)):
                await ws.send('{"type": "ping", "id": 7}')
                assert await recv(ws) == {"type": "pong", "id": 7}
                sub = (await subscribe(ws, project="p1", id="x"))["subscription"]
                store.append()
                assert (await recv(ws))["sequence"] == 1
                await ws.send('{"type": "status"}')
                status = await recv(ws)
                assert status["type"] == "status" and status["head"] == 1
                assert status["clients"] == 2
                assert status["subscriptions"] == [
                    {"subscription": sub, "project": "p1", "session": None, "since": None,
                     "last_sequence": 1}]
                await ws.send(orjson.dumps({"type": "unsubscribe", "subscription": sub}).decode())
                assert await recv(ws) == {"type": "unsubscribed", "subscription": sub}
                store.append()
                await wait_for(lambda: running.hub.head == 2, "head 2")
                await ws.send('{"type": "ping"}')
                assert await recv(ws) == {"type": "pong"}

    asyncio.run(main())


def test_other_paths_get_404():
    async def main():
        async with running_stack() as (_, running, _holder):
            with pytest.raises(InvalidStatus) as refused:
                async with connect(ws_url(running, "/other")):
                    pass
            assert refused.value.response.status_code == 404

    asyncio.run(main())


def test_store_restart_and_store_kick_are_survived_without_loss():
    async def main():
        async with running_stack() as (store, running, holder):
            channel, stub = stream_stub(running)
            call = stub.Subscribe(stream_pb2.SubscribeRequest())
            await wait_for(lambda: len(running.hub) == 1, "gRPC subscriber")
            async with connect(ws_url(running)) as ws:
                await subscribe(ws)
                store.append()
                store.append()
                assert [f["sequence"] for f in await recv_changes(ws, 2)] == [1, 2]
                await holder["store_srv"].stop(0)
                await wait_for(lambda: not running.feed.connected, "the upstream to notice")
                store.append()  # committed while the stream service cannot see the store
                store.append()
                holder["store_srv"], _ = await start_store(store, holder["store_port"])
                store.append()
                assert [f["sequence"] for f in await recv_changes(ws, 3)] == [3, 4, 5]
                # The store ends a slow follower: the upstream resumes where it was.
                store.kick_followers()
                store.append()
                assert [f["sequence"] for f in await recv_changes(ws, 1)] == [6]
                await ws.send('{"type":"ping"}')
                assert (await recv(ws))["type"] == "pong"
            got = [await asyncio.wait_for(call.read(), DEADLINE) for _ in range(6)]
            assert [c.sequence for c in got] == [1, 2, 3, 4, 5, 6]
            call.cancel()
            await channel.close()

    asyncio.run(main())


def test_grpc_negative_since_is_invalid():
    async def main():
        async with running_stack() as (_, running, _holder):
            channel, stub = stream_stub(running)
            call = stub.Subscribe(stream_pb2.SubscribeRequest(since_sequence=-1))
            with pytest.raises(grpc.aio.AioRpcError) as failed:
                await asyncio.wait_for(call.read(), DEADLINE)
            assert failed.value.code() == grpc.StatusCode.INVALID_ARGUMENT
            await channel.close()

    asyncio.run(main())


def test_each_change_is_delivered_in_a_span_of_its_ingest_trace():
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))

    async def main():
        async with running_stack() as (store, running, _):
            running.feed.tracer = provider.get_tracer("test")
            async with connect(ws_url(running)) as ws:
                await subscribe(ws)
                store.append(trace_context={
                    "traceparent": "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"})
                await recv_changes(ws, 1)

    asyncio.run(main())
    (span,) = exporter.get_finished_spans()
    assert span.name == "stream.deliver"
    assert format(span.context.trace_id, "032x") == "0af7651916cd43dd8448eb211c80319c"
    assert format(span.parent.span_id, "016x") == "b7ad6b7169203331"
    assert span.attributes["sequence"] == 1


def test_a_change_too_deep_to_reencode_is_sent_as_text_and_delivery_goes_on():
    async def main():
        async with running_stack() as (store, running, _):
            async with connect(ws_url(running)) as ws:
                await subscribe(ws)
                deep = b"[" * 300 + b"]" * 300  # orjson reads 1024 levels but writes only 254
                change = store.append(text="deep")
                change.message.content[0].tool_input_json = deep
                store.append(text="after")
                first, second = await recv_changes(ws, 2)
                assert first["message"]["content"][0]["input"] == deep.decode()
                assert second["sequence"] == 2 and second["message"]["text"] == "after"

    asyncio.run(main())


def test_an_unexpected_upstream_failure_is_retried_without_loss():
    async def main():
        async with running_stack() as (store, running, _):
            publish, failed = running.hub.publish, []

            def fail_once(*args):
                if not failed:
                    failed.append(args[0])
                    raise RuntimeError("injected bug")
                publish(*args)

            running.hub.publish = fail_once
            async with connect(ws_url(running)) as ws:
                await subscribe(ws)
                store.append()
                store.append()
                assert [f["sequence"] for f in await recv_changes(ws, 2)] == [1, 2]
            assert failed == [1] and not running.upstream_task.done()

    asyncio.run(main())


def test_slow_close_names_the_lowest_resume_point_of_all_subscriptions():
    async def main():
        async with running_stack(queue=4) as (store, running, _):
            for _ in range(5):
                store.append(project="p2", session="s2")
            await wait_for(lambda: running.hub.head == 5, "head 5")
            store.hold_after_first = asyncio.Event()  # the replay sends 1, then stalls
            sock = socket.socket()
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
            sock.connect(("127.0.0.1", running.ws_port))
            sock.setblocking(False)
            async with connect(ws_url(running), sock=sock, max_queue=1,
                               max_size=2**21) as ws:
                live = (await subscribe(ws, project="p1"))["subscription"]
                replaying = (await subscribe(ws, project="p2", since=0))["subscription"]
                first = await recv(ws)
                assert (first["subscription"], first["sequence"]) == (replaying, 1)
                big = "x" * 200_000
                while running.gateway.slow_disconnects == 0:
                    assert running.hub.head < 2000, "the client was never disconnected"
                    sequence = store.append(project="p1", text=big).sequence
                    await wait_for(lambda s=sequence: running.hub.head == s, "the change")
                got = {live: [], replaying: [1]}
                with pytest.raises(ConnectionClosed) as closed:
                    while True:
                        frame = await recv(ws)
                        got[frame["subscription"]].append(frame["sequence"])
                assert closed.value.rcvd.code == SLOW_CONSUMER_CLOSE_CODE
                resume_from = int(closed.value.rcvd.reason.rsplit("since=", 1)[1])
                # Resubscribing both from there must not skip anything either one missed.
                assert resume_from == 1 == got[replaying][-1]
            store.hold_after_first.set()

    asyncio.run(main())


def test_a_client_over_the_byte_budget_is_closed_even_with_few_frames_queued():
    async def main():
        async with running_stack(queue=1000) as (store, running, _):
            running.gateway.byte_limit = 1_000_000
            sock = socket.socket()
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
            sock.connect(("127.0.0.1", running.ws_port))
            sock.setblocking(False)
            async with connect(ws_url(running), sock=sock, max_queue=1,
                               max_size=2**21) as ws:
                await subscribe(ws)
                big = "x" * 200_000
                while running.gateway.slow_disconnects == 0:
                    # Far fewer than the 1000 frames the count allows.
                    assert running.hub.head < 300, "the byte budget was never enforced"
                    sequence = store.append(text=big).sequence
                    await wait_for(lambda s=sequence: running.hub.head == s, "the change")
                received = []
                with pytest.raises(ConnectionClosed) as closed:
                    while True:
                        received.append((await recv(ws))["sequence"])
                frame = closed.value.rcvd
                assert frame.code == SLOW_CONSUMER_CLOSE_CODE and "1000000 bytes" in frame.reason
                resume_from = int(frame.reason.rsplit("since=", 1)[1])
                assert received == list(range(1, resume_from + 1))

    asyncio.run(main())


def test_since_beyond_the_head_is_refused_with_the_head():
    async def main():
        async with running_stack() as (store, running, _):
            store.append()
            store.append()
            await wait_for(lambda: running.hub.head == 2, "head 2")
            async with connect(ws_url(running)) as ws:
                await ws.send('{"type": "subscribe", "since": 7, "id": 1}')
                reply = await recv(ws)
                assert (reply["type"], reply["error"], reply["head"], reply["id"]) == (
                    "error", "since_beyond_head", 2, 1)
                assert "2" in reply["message"]
                await ws.send(orjson.dumps({"type": "subscribe", "since": 2**63}).decode())
                assert (await recv(ws))["error"] == "invalid_since"
                await subscribe(ws, since=2)  # at the head is fine
                store.append()
                assert (await recv(ws))["sequence"] == 3
            channel, stub = stream_stub(running)
            call = stub.Subscribe(stream_pb2.SubscribeRequest(since_sequence=9))
            with pytest.raises(grpc.aio.AioRpcError) as failed:
                await asyncio.wait_for(call.read(), DEADLINE)
            assert failed.value.code() == grpc.StatusCode.OUT_OF_RANGE
            assert "3" in failed.value.details()
            await channel.close()

    asyncio.run(main())


def test_subscriptions_per_connection_are_capped_and_unsubscribe_forgets_them():
    from services.stream.gateway import MAX_SUBSCRIPTIONS

    async def main():
        async with running_stack() as (_, running, _holder):
            async with connect(ws_url(running)) as ws:
                ids = [(await subscribe(ws))["subscription"] for _ in range(MAX_SUBSCRIPTIONS)]
                await ws.send('{"type": "subscribe", "id": "over"}')
                reply = await recv(ws)
                assert (reply["type"], reply["error"], reply["id"]) == (
                    "error", "too_many_subscriptions", "over")
                (conn,) = running.gateway.connections
                await ws.send(orjson.dumps({"type": "unsubscribe",
                                            "subscription": ids[0]}).decode())
                assert (await recv(ws))["type"] == "unsubscribed"
                assert ids[0] not in conn.last_sent
                await subscribe(ws)  # the slot is free again
                assert len(running.hub) == MAX_SUBSCRIPTIONS

    asyncio.run(main())


def test_the_feed_follows_heads_only_while_nobody_subscribes(monkeypatch):
    monkeypatch.setattr(upstream, "IDLE_SECONDS", 0.1)

    async def main():
        async with running_stack() as (store, running, _):
            for _ in range(3):
                store.append()
            await wait_for(lambda: running.hub.head == 3, "head 3")
            assert [r.heads_only for r in store.follows] == [True]

            async with connect(ws_url(running)) as ws:
                reply = await subscribe(ws)
                assert reply["head"] == 3
                await wait_for(lambda: not store.follows[-1].heads_only, "payloads")
                assert store.follows[-1].since_sequence == 3
                for n in range(4):
                    store.append(text=f"live {n}")
                frames = await recv_changes(ws, 4)
                assert [f["sequence"] for f in frames] == [4, 5, 6, 7]
                assert [f["message"]["text"] for f in frames] == [f"live {n}" for n in range(4)]

            # The last subscriber left: back to heads, and the head still follows the store.
            await wait_for(lambda: store.follows[-1].heads_only, "heads only again")
            assert store.follows[-1].since_sequence == 7
            store.append()
            await wait_for(lambda: running.hub.head == 8, "head 8")

    asyncio.run(main())


def test_the_first_subscriber_starts_at_the_store_head_it_was_told():
    async def main():
        store = StandInStore()
        store_srv, store_port = await start_store(store)
        for _ in range(3):
            store.append()
        settings = config.resolve({"host": "127.0.0.1", "port": 0, "ws_host": "127.0.0.1",
                                   "ws_port": 0, "store_addr": f"127.0.0.1:{store_port}",
                                   "token": TOKEN}, environ={})
        running = await stream_server.start(settings)
        try:
            # At once, before the feed has even connected: the head is known already.
            async with connect(ws_url(running)) as ws:
                assert (await subscribe(ws))["head"] == 3
                store.append(text="after")
                (frame,) = await recv_changes(ws, 1)
                assert frame["sequence"] == 4 and frame["message"]["text"] == "after"
        finally:
            await running.stop()
            await store_srv.stop(0)

    asyncio.run(main())
