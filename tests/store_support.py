"""Helpers of the store tests: a real store on port 0 and protobuf batches to feed it."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Callable, Iterable
from pathlib import Path

from services.store import server
from threadline import auth, bootstrap, config
from threadline.v1 import common_pb2 as pb
from threadline.v1 import store_pb2_grpc

PATH = "/transcripts/proj/s1.jsonl"


# A store on a database server keeps no token beside a file: its tests give it one.
SERVER_TOKEN = "store-tests-token"


def settings(db: Path | str, **overrides: object) -> config.Settings:
    if config.is_database_url(db):
        overrides.setdefault("token", SERVER_TOKEN)
    return config.resolve({"db": db, "port": 0, **overrides}, environ={})


@contextlib.asynccontextmanager
async def running_store(db: Path | str, **overrides: object
                        ) -> AsyncIterator[tuple[server.Running, store_pb2_grpc.StoreServiceStub]]:
    resolved = settings(db, **overrides)
    run = await server.start(resolved)
    # Like every client of the installation: with the token the store created beside the db.
    channel = bootstrap.channel(f"127.0.0.1:{run.port}", auth.for_client(resolved))
    try:
        yield run, store_pb2_grpc.StoreServiceStub(channel)
    finally:
        await channel.close()
        await run.stop()


def message(key: str, *, session: str = "s1", project: str = "proj", path: str = PATH,
            offset: int = 0, line: int = 1, ts: str = "2025-01-01T00:00:00Z",
            text: str = "hello", raw: bytes | None = None, cwd: str = "/work") -> pb.Message:
    raw = raw if raw is not None else b'{"uuid":"%s"}' % key.encode()
    return pb.Message(
        uuid=key, key=key, session_id=session, project_key=project, type="user",
        role=pb.ROLE_USER, timestamp=ts, text=text, cwd=cwd, raw=raw,
        format=pb.SOURCE_FORMAT_CLAUDE_CODE,
        content=[pb.ContentBlock(kind=pb.BLOCK_KIND_TEXT, text=text)],
        source=pb.SourcePosition(path=path, byte_offset=offset, line_number=line,
                                 byte_length=len(raw)))


def messages(start: int, count: int, *, prefix: str = "m", **kw: object) -> list[pb.Message]:
    return [message(f"{prefix}{i}", offset=i * 100, line=i + 1,
                    ts=f"2025-01-01T00:{i // 60 % 60:02d}:{i % 60:02d}Z", **kw)  # type: ignore
            for i in range(start, start + count)]


def batch(batch_id: int, msgs: Iterable[pb.Message] = (), *, path: str = PATH,
          offset: int = 0, identity: str = "1:1", errors: Iterable[pb.ParseError] = (),
          reset: bool = False, tool_calls: Iterable[pb.ToolCall] = (),
          project: str = "proj") -> pb.Batch:
    msgs = list(msgs)
    position = pb.SourceOffset(
        source=pb.Source(path=path, identity=identity, project_key=project,
                         format=pb.SOURCE_FORMAT_CLAUDE_CODE),
        offset=offset, line_count=len(msgs))
    return pb.Batch(batch_id=batch_id, tool_calls=list(tool_calls), chunks=[
        pb.SourceChunk(position=position, messages=msgs, errors=list(errors), reset=reset)])


def parse_error(offset: int, *, path: str = PATH, project: str = "proj") -> pb.ParseError:
    return pb.ParseError(source=pb.SourcePosition(path=path, byte_offset=offset, line_number=1,
                                                  byte_length=3),
                         reason="invalid_json", detail="bad", excerpt=b"{x", project_key=project)


async def write(stub: store_pb2_grpc.StoreServiceStub, batches: Iterable[pb.Batch]
                ) -> list[pb.BatchAck]:
    async def requests() -> AsyncIterator[pb.Batch]:
        for b in batches:
            yield b

    return [ack async for ack in stub.Write(requests())]


async def wait_for(condition: Callable[[], bool], timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError("condition not met in time")
        await asyncio.sleep(0.005)
