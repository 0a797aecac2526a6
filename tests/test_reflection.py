"""gRPC server reflection: tools such as grpcurl and Postman list and call every service
without the .proto files. Every service is built by `threadline.bootstrap.create_server`;
the store is started here for real, and asked the way grpcurl asks."""

from __future__ import annotations

import asyncio

import grpc
from google.protobuf.descriptor_pool import DescriptorPool
from grpc_reflection.v1alpha.proto_reflection_descriptor_database import (
    ProtoReflectionDescriptorDatabase,
)
from store_support import running_store


def described(address: str) -> tuple[set[str], list[str]]:
    with grpc.insecure_channel(address) as channel:
        database = ProtoReflectionDescriptorDatabase(channel)
        services = set(database.get_services())
        pool = DescriptorPool(database)
        store = pool.FindServiceByName("threadline.v1.StoreService")
        return services, [m.name for m in store.methods]


def test_the_services_describe_themselves_by_reflection(tmp_path):
    async def main() -> tuple[set[str], list[str]]:
        async with running_store(tmp_path / "t.db") as (run, _stub):
            return await asyncio.to_thread(described, f"127.0.0.1:{run.port}")

    services, methods = asyncio.run(main())
    assert {"threadline.v1.StoreService", "grpc.health.v1.Health"} <= services
    assert {"Write", "Changes", "ListSessions", "GetSessionMessages", "GetUsage"} <= set(methods)
